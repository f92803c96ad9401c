"""A keel workdir's ML Metadata store and the one set of graph walks over it.

Executions and artifacts are linked by events; each event's path key names the input or output
(`model`, `examples`, `blessing`, ...). Executions belong to a `node` context (the pipeline node id,
see `keel.pipeline.nodes`) and a `pipeline_run` context. Everything here walks those links directly
(no filter_query), so it reads any store TFX wrote, local SQLite or not.
"""

import dataclasses
import os
import sqlite3
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from keel.core.errors import KeelError
from keel.core.workdirs import METADATA_FILE

Event, Execution, Artifact = metadata_store_pb2.Event, metadata_store_pb2.Execution, metadata_store_pb2.Artifact
STATE_NAMES = {v: k for k, v in Execution.State.items()}
FINISHED = (Execution.COMPLETE, Execution.CACHED)  # a cached execution reuses the outputs of a complete one
_INPUTS = (Event.INPUT, Event.DECLARED_INPUT)
_OUTPUTS = (Event.OUTPUT, Event.DECLARED_OUTPUT)
_NODE, _RUN = "node", "pipeline_run"
RESOLVER_TYPE = "tfx.dsl.components.common.resolver.Resolver"  # the execution type of every tfx.dsl.Resolver node


def store_path(workdir: Path) -> Path:
    """Where a workdir keeps its SQLite ML Metadata store."""
    return Path(workdir) / METADATA_FILE


LOCK_WAIT_SECONDS = float(os.environ.get("KEEL_METADATA_LOCK_SECONDS", "30"))
RECOVERY = (
    "move it aside (mv {path} {path}.damaged) and run again: the next `keel run` starts a new store and "
    "runs every component again; pushed versions under serving/ stay (see docs/reliability.md)"
)


def check_sqlite(path: Path, wait_seconds: float | None = None) -> None:
    """Raises KeelError in one line when the SQLite file at `path` is damaged, or locked past `wait_seconds`.

    ML Metadata would fail on either deep inside a component (or hang on a lock); this names the
    file and what to do before anything runs. The write lock is only tried, never held.
    """
    wait = LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    if path.stat().st_size == 0:
        raise KeelError(f"{path}: the ML Metadata store is empty (0 bytes: truncated); " + RECOVERY.format(path=path))
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=wait)
        try:
            verdict = connection.execute("PRAGMA quick_check").fetchall()
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise KeelError(
                f"{path}: the ML Metadata store is locked by another process (waited {wait:g}s); "
                "stop whatever holds it open (`fuser` lists it), then run again"
            ) from None
        raise KeelError(f"{path}: the ML Metadata store is damaged ({e}); " + RECOVERY.format(path=path)) from None
    except sqlite3.DatabaseError as e:
        raise KeelError(f"{path}: the ML Metadata store is damaged ({e}); " + RECOVERY.format(path=path)) from None
    if verdict != [("ok",)]:
        raise KeelError(
            f"{path}: the ML Metadata store is damaged (integrity check: {verdict[0][0]}); "
            + RECOVERY.format(path=path)
        )


def open_store(workdir: Path) -> metadata_store.MetadataStore:
    """Opens the workdir's SQLite ML Metadata store (it must exist, whole and not locked: see check_sqlite)."""
    path = store_path(workdir)
    if not path.exists():
        raise KeelError(f"{workdir}: no ML Metadata store here (run `keel run SPEC` first)")
    check_sqlite(path)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


# Custom properties


def custom(artifact_or_context, key: str, default=None):
    """A custom property's value (int, double or string), or `default`."""
    if key not in artifact_or_context.custom_properties:
        return default
    value = artifact_or_context.custom_properties[key]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else default


def prop(artifact, key: str, default=None):
    """An artifact's property or custom property value, or `default`."""
    for properties in (artifact.properties, artifact.custom_properties):
        if key in properties:
            kind = properties[key].WhichOneof("value")
            if kind:
                return getattr(properties[key], kind)
    return default


def set_custom(store, context, values: dict[str, str]) -> None:
    """Sets string custom properties on a context (one transaction)."""
    for key, v in values.items():
        context.custom_properties[key].string_value = v
    store.put_contexts([context])


# Runs and nodes


def runs(store) -> list[metadata_store_pb2.Context]:
    """Every pipeline_run context, oldest first."""
    return sorted(store.get_contexts_by_type(_RUN), key=lambda c: (c.create_time_since_epoch, c.id))


def latest_run_context(store) -> metadata_store_pb2.Context | None:
    """The newest pipeline_run context in the store (a keel workdir holds one pipeline)."""
    found = runs(store)
    return found[-1] if found else None


def run_context(store, run_id: str) -> metadata_store_pb2.Context | None:
    """The pipeline_run context TFX named `run_id`, or None."""
    return store.get_context_by_type_and_name(_RUN, run_id)


def _context_of(store, execution, type_name: str) -> metadata_store_pb2.Context | None:
    contexts = store.get_contexts_by_execution(execution.id)
    types = {t.id: t.name for t in store.get_context_types_by_id(sorted({c.type_id for c in contexts}))}
    return next((c for c in contexts if types[c.type_id] == type_name), None)


def node_id(store, execution) -> str:
    """The pipeline node an execution belongs to (one of `keel.pipeline.nodes`)."""
    node = _context_of(store, execution, _NODE)
    # TFX names node contexts PIPELINE.NODE_ID.
    return node.name.split(".", 1)[-1] if node else f"execution-{execution.id}"


def run_of(store, execution) -> metadata_store_pb2.Context | None:
    """The pipeline_run context an execution belongs to."""
    return _context_of(store, execution, _RUN)


@dataclasses.dataclass
class NodeExecution:
    """One execution of a pipeline run, with the node it ran for."""

    node_id: str
    execution: metadata_store_pb2.Execution
    type_name: str

    @property
    def is_resolver(self) -> bool:
        """A Resolver node: it selects existing artifacts and does no work of its own."""
        return self.type_name == RESOLVER_TYPE

    @property
    def state(self) -> str:
        return STATE_NAMES.get(self.execution.last_known_state, "UNKNOWN")

    @property
    def seconds(self) -> float:
        e = self.execution
        return max(0.0, (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0)


def run_executions(store, run) -> list[NodeExecution]:
    """Executions in one pipeline run (a pipeline_run context), each with its node id, in order of creation."""
    executions = store.get_executions_by_context(run.id)
    types = {t.id: t.name for t in store.get_execution_types_by_id(sorted({e.type_id for e in executions}))}
    found = [NodeExecution(node_id(store, e), e, types[e.type_id]) for e in executions]
    return sorted(found, key=lambda n: (n.execution.create_time_since_epoch, n.execution.id))


def node_execution(store, run, node: str) -> metadata_store_pb2.Execution | None:
    """The execution of node `node` in pipeline run `run`, or None if the run did not reach it."""
    return next((n.execution for n in run_executions(store, run) if n.node_id == node), None)


# Events: what an execution read and wrote


def _grouped(events, fetch, id_of) -> dict[str, list]:
    """Groups what `fetch` returns for the events' ids (artifacts or executions) by event path key."""
    found = {x.id: x for x in fetch(sorted({id_of(e) for e in events}))}
    by_key: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        if id_of(event) in found:
            by_key.setdefault(key, []).append(found[id_of(event)])
    return by_key


def _artifacts(store, execution_id: int, kinds) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in kinds]
    return _grouped(events, store.get_artifacts_by_id, lambda e: e.artifact_id)


def inputs(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's input artifacts by input key."""
    return _artifacts(store, execution_id, _INPUTS)


def outputs(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's output artifacts by output key."""
    return _artifacts(store, execution_id, _OUTPUTS)


def input_artifact(store, execution_id: int, key: str) -> metadata_store_pb2.Artifact | None:
    """The (first) artifact an execution read as `key`, or None."""
    return next(iter(inputs(store, execution_id).get(key, [])), None)


def output_artifact(store, execution_id: int, key: str) -> metadata_store_pb2.Artifact | None:
    """The (first) artifact an execution wrote as `key`, or None."""
    return next(iter(outputs(store, execution_id).get(key, [])), None)


# Events: who wrote and read an artifact


def producers(store, artifact_id: int) -> list[metadata_store_pb2.Execution]:
    """Every execution that output an artifact: the one that wrote it and later cached reuses, oldest first."""
    events = [e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUTS]
    return sorted(store.get_executions_by_id(sorted({e.execution_id for e in events})), key=lambda x: x.id)


def producer(store, artifact_id: int) -> metadata_store_pb2.Execution | None:
    """The execution that wrote an artifact: the completed one, not later cached reuses of it."""
    found = producers(store, artifact_id)
    return next((x for x in found if x.last_known_state == Execution.COMPLETE), found[0] if found else None)


def consumers(store, artifact_id: int) -> dict[str, list[metadata_store_pb2.Execution]]:
    """Executions that read an artifact, by the input key they read it as."""
    events = [e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _INPUTS]
    return _grouped(events, store.get_executions_by_id, lambda e: e.execution_id)


def readers(store, artifact_id: int, key: str, node: str) -> list[metadata_store_pb2.Execution]:
    """Finished (complete or cached) executions of node `node` that read an artifact as `key`, oldest first."""
    found = [
        x
        for x in consumers(store, artifact_id).get(key, [])
        if x.last_known_state in FINISHED and node_id(store, x) == node
    ]
    return sorted({x.id: x for x in found}.values(), key=lambda x: x.id)


def close_interrupted(store) -> list[str]:
    """Marks executions a killed run left RUNNING as CANCELED, and their PENDING outputs ABANDONED.

    Only safe while no run is active in the workdir (the caller holds its lock). TFX never caches
    from such executions; this makes the store say what happened instead of "still running".
    Returns the node ids of the executions it closed.
    """
    stale = [e for e in store.get_executions() if e.last_known_state in (Execution.NEW, Execution.RUNNING)]
    if not stale:
        return []
    closed = []
    for execution in stale:
        execution.last_known_state = Execution.CANCELED
        execution.custom_properties["keel_closed"].string_value = "interrupted run: the process was killed"
        closed.append(node_id(store, execution))
    pending = [
        a
        for e in stale
        for found in outputs(store, e.id).values()
        for a in found
        if a.state in (Artifact.PENDING, Artifact.UNKNOWN)
    ]
    for artifact in pending:
        artifact.state = Artifact.ABANDONED
    store.put_artifacts(pending)
    store.put_executions(stale)
    return closed
