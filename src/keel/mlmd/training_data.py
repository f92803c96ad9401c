"""What the served model was trained on, found through ML Metadata.

From a pushed version: the Pusher's PushedModel artifact (its `pushed_version`) <- the Pusher
execution <- its input model <- the Trainer execution. The Trainer's input schema is the schema;
its input examples come from Transform, whose input examples (ExampleGen's) were summarised by a
StatisticsGen execution: that output is the training statistics. The Evaluator execution that took
the same model gives the eval metrics, and the pipeline run that trained it the recorded spec.
"""

import dataclasses
import json
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

from keel.mlmd import store as metadata
from keel.core.errors import KeelError

_INPUT = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUT = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


class LineageError(KeelError):
    """ML Metadata does not say what the model was trained on."""


@dataclasses.dataclass
class TrainingLineage:
    version: str
    model_uri: str
    schema_file: Path
    train_statistics_file: Path
    evaluation_uri: str | None
    spec: dict


def _key(event) -> str:
    return event.path.steps[0].key if event.path.steps else ""


def _events(store, execution_id: int, kinds) -> list:
    return [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in kinds]


def _producer(store, artifact_id: int) -> int | None:
    return next((e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUT), None)


def _input(store, execution_id: int, key: str):
    ids = [e.artifact_id for e in _events(store, execution_id, _INPUT) if _key(e) == key]
    return store.get_artifacts_by_id(ids[:1])[0] if ids else None


def _output(store, execution_id: int, key: str):
    ids = [e.artifact_id for e in _events(store, execution_id, _OUTPUT) if _key(e) == key]
    return store.get_artifacts_by_id(ids[:1])[0] if ids else None


def _consumers(store, artifact_id: int, type_suffix: str, key: str) -> list[int]:
    ids = [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id])
           if e.type in _INPUT and _key(e) == key]
    found = []
    for execution in store.get_executions_by_id(ids):
        type_name = store.get_execution_types_by_id([execution.type_id])[0].name
        if type_name.endswith(type_suffix) and execution.last_known_state in (
                metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED):
            found.append(execution.id)
    return sorted(found)


def local_path(uri: str, workdir: Path) -> Path:
    """An artifact's path; for a workdir that was moved, the same path under this workdir's pipeline/."""
    path = Path(uri)
    if path.exists() or "/pipeline/" not in uri:
        return path
    return Path(workdir) / uri[uri.rindex("/pipeline/") + 1:]


def training_lineage(workdir: Path, version: str) -> TrainingLineage:
    """The schema, training statistics, evaluation and spec behind pushed version `version`."""
    store = metadata.open_store(workdir)
    pushed = [a for a in store.get_artifacts_by_type("PushedModel")
              if metadata.custom(a, "pushed_version") == version and metadata.custom(a, "pushed", 0)]
    if not pushed:
        raise LineageError(f"{workdir}: ML Metadata has no push of version {version} (was it pushed from this "
                           "workdir?)")
    pusher = _producer(store, pushed[-1].id)
    model = _input(store, pusher, "model") if pusher else None
    trainer = _producer(store, model.id) if model else None
    if trainer is None:
        raise LineageError(f"{workdir}: ML Metadata does not record the Trainer of version {version}")
    schema = _input(store, trainer, "schema")
    transformed = _input(store, trainer, "examples")
    transform = _producer(store, transformed.id) if transformed else None
    examples = _input(store, transform, "examples") if transform else None
    statistics_runs = _consumers(store, examples.id, "StatisticsGen", "examples") if examples else []
    statistics = _output(store, statistics_runs[-1], "statistics") if statistics_runs else None
    if schema is None or statistics is None:
        raise LineageError(f"{workdir}: ML Metadata does not link version {version} to its schema and the "
                           "statistics of its training examples")
    evaluations = _consumers(store, model.id, "Evaluator", "model")
    evaluation = _output(store, evaluations[-1], "evaluation") if evaluations else None
    return TrainingLineage(
        version=version, model_uri=model.uri,
        schema_file=local_path(schema.uri, workdir) / "schema.pbtxt",
        train_statistics_file=local_path(statistics.uri, workdir) / "Split-train" / "FeatureStats.pb",
        evaluation_uri=str(local_path(evaluation.uri, workdir)) if evaluation else None,
        spec=_run_spec(store, model.id))


def _run_spec(store, model_id: int) -> dict:
    """The resolved spec of the newest pipeline run that trained or reused (cached) the model, or {}.

    A re-run whose Trainer is cached records its own spec, so a changed [monitor] section applies
    after `keel run` without retraining.
    """
    producers = [e.execution_id for e in store.get_events_by_artifact_ids([model_id]) if e.type in _OUTPUT]
    runs = [c for execution_id in producers for c in store.get_contexts_by_execution(execution_id)
            if metadata.custom(c, "keel_spec")]
    newest = max(runs, key=lambda c: (c.create_time_since_epoch, c.id), default=None)
    return json.loads(metadata.custom(newest, "keel_spec")) if newest else {}
