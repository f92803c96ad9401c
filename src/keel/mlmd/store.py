"""ML Metadata queries over a keel workdir, walking contexts and events (no filter_query)."""

import dataclasses
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

STATE_NAMES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


def store_path(workdir: Path) -> Path:
    return Path(workdir) / "metadata.sqlite"


def open_store(workdir: Path) -> metadata_store.MetadataStore:
    """Opens the workdir's SQLite ML Metadata store (it must exist)."""
    path = store_path(workdir)
    if not path.exists():
        from keel.core.errors import KeelError

        raise KeelError(f"{workdir}: no ML Metadata store here (run `keel run SPEC` first)")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def latest_run_context(store) -> metadata_store_pb2.Context | None:
    """The newest pipeline_run context in the store (a keel workdir holds one pipeline)."""
    runs = store.get_contexts_by_type("pipeline_run")
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id), default=None)


def run_context(store, run_id: str) -> metadata_store_pb2.Context | None:
    """The pipeline_run context TFX named `run_id`, or None."""
    return store.get_context_by_type_and_name("pipeline_run", run_id)


def _type_name(store, context) -> str:
    return store.get_context_types_by_id([context.type_id])[0].name


@dataclasses.dataclass
class NodeExecution:
    node_id: str
    execution: metadata_store_pb2.Execution
    type_name: str = ""

    @property
    def is_resolver(self) -> bool:
        return self.type_name.endswith("Resolver")

    @property
    def state(self) -> str:
        return STATE_NAMES.get(self.execution.last_known_state, "UNKNOWN")

    @property
    def seconds(self) -> float:
        e = self.execution
        return max(0.0, (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0)


def run_executions(store, run_context) -> list[NodeExecution]:
    """Executions in one pipeline run, each with its node id, in order of creation."""
    found = []
    for execution in store.get_executions_by_context(run_context.id):
        node_id = None
        for context in store.get_contexts_by_execution(execution.id):
            if _type_name(store, context) == "node":
                node_id = context.name.split(".", 1)[-1]
        type_name = store.get_execution_types_by_id([execution.type_id])[0].name
        found.append(NodeExecution(node_id or f"execution-{execution.id}", execution, type_name))
    return sorted(found, key=lambda n: (n.execution.create_time_since_epoch, n.execution.id))


def outputs(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's output artifacts by output key."""
    by_key: dict[str, list] = {}
    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else "output"
        if event.artifact_id in artifacts:
            by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key


def custom(artifact_or_context, key: str, default=None):
    """A custom property's value (int, double or string), or `default`."""
    if key not in artifact_or_context.custom_properties:
        return default
    value = artifact_or_context.custom_properties[key]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else default


def set_custom(store, context, values: dict[str, str]) -> None:
    """Sets string custom properties on a context (one transaction)."""
    for key, v in values.items():
        context.custom_properties[key].string_value = v
    store.put_contexts([context])


def prop(artifact, key: str, default=None):
    """An artifact's property or custom property value, or `default`."""
    for properties in (artifact.properties, artifact.custom_properties):
        if key in properties:
            kind = properties[key].WhichOneof("value")
            if kind:
                return getattr(properties[key], kind)
    return default


def _by_key(events, fetch, id_of) -> dict[str, list]:
    """Groups what `fetch` returns for the events' ids (artifacts or executions) by event path key."""
    found = {x.id: x for x in fetch(sorted({id_of(e) for e in events}))}
    by_key: dict[str, list] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        if id_of(event) in found:
            by_key.setdefault(key, []).append(found[id_of(event)])
    return by_key


def inputs(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """An execution's input artifacts by input key."""
    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type in (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)]
    return _by_key(events, store.get_artifacts_by_id, lambda e: e.artifact_id)


def producer(store, artifact_id: int) -> metadata_store_pb2.Execution | None:
    """The execution that wrote an artifact: the completed one, not later cached reuses of it."""
    events = [e for e in store.get_events_by_artifact_ids([artifact_id])
              if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    executions = store.get_executions_by_id(sorted({e.execution_id for e in events}))
    complete = [x for x in executions if x.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    return min(complete or executions, key=lambda x: x.id, default=None)


def consumers(store, artifact_id: int) -> dict[str, list[metadata_store_pb2.Execution]]:
    """Executions that read an artifact, by the input key they read it as."""
    events = [e for e in store.get_events_by_artifact_ids([artifact_id])
              if e.type in (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)]
    return _by_key(events, store.get_executions_by_id, lambda e: e.execution_id)


def node_id(store, execution) -> str:
    """The pipeline node an execution belongs to (e.g. "Trainer")."""
    for context in store.get_contexts_by_execution(execution.id):
        if _type_name(store, context) == "node":
            return context.name.split(".", 1)[-1]
    return f"execution-{execution.id}"


def run_of(store, execution) -> metadata_store_pb2.Context | None:
    """The pipeline_run context an execution belongs to."""
    return next((c for c in store.get_contexts_by_execution(execution.id)
                 if _type_name(store, c) == "pipeline_run"), None)


def close_interrupted(store) -> list[str]:
    """Marks executions a killed run left RUNNING as CANCELED, and their PENDING outputs ABANDONED.

    Only safe while no run is active in the workdir (the caller holds its lock). TFX never caches
    from such executions; this makes the store say what happened instead of "still running".
    Returns the node ids of the executions it closed.
    """
    Execution, Artifact = metadata_store_pb2.Execution, metadata_store_pb2.Artifact
    stale = [e for e in store.get_executions() if e.last_known_state in (Execution.NEW, Execution.RUNNING)]
    if not stale:
        return []
    closed = []
    for execution in stale:
        execution.last_known_state = Execution.CANCELED
        execution.custom_properties["keel_closed"].string_value = "interrupted run: the process was killed"
        closed.append(node_id(store, execution))
    pending = [a for e in stale for found in outputs(store, e.id).values() for a in found
               if a.state in (Artifact.PENDING, Artifact.UNKNOWN)]
    for artifact in pending:
        artifact.state = Artifact.ABANDONED
    store.put_artifacts(pending)
    store.put_executions(stale)
    return closed
