"""What the served model was trained on, found through ML Metadata (what `keel monitor` compares with).

From a pushed version: the Pusher's PushedModel artifact (its `pushed_version`) <- the Pusher
execution <- its input model <- the Trainer execution. The Trainer's input schema is the schema;
its examples come from Transform, whose input examples (ExampleGen's) were summarised by
StatisticsGen: that output is the training statistics. The Evaluator that judged the same model
gives the eval metrics, and the newest pipeline run that trained or reused it the recorded spec.
"""

import dataclasses
import json
from pathlib import Path

from keel.core.errors import KeelError
from keel.mlmd import evaluation, lineage
from keel.mlmd import store as metadata


class LineageError(KeelError):
    """ML Metadata does not say what the model was trained on."""


@dataclasses.dataclass
class TrainingLineage:
    version: str
    model_uri: str
    schema_file: Path
    train_statistics_file: Path
    examples_uri: str  # the ExampleGen output the model was trained on (its Split-train is the training data)
    evaluation_uri: str | None
    spec: dict


def local_path(uri: str, workdir: Path) -> Path:
    """An artifact's path; for a workdir that was moved, the same path under this workdir's pipeline/."""
    path = Path(uri)
    if path.exists() or "/pipeline/" not in uri:
        return path
    return Path(workdir) / uri[uri.rindex("/pipeline/") + 1 :]


def training_lineage(workdir: Path, version: str) -> TrainingLineage:
    """The schema, training statistics, evaluation and spec behind pushed version `version`."""
    store = metadata.open_store(workdir)
    pushed = [a for a in lineage.pushed_models(store) if metadata.custom(a, "pushed_version") == version]
    if not pushed:
        raise LineageError(
            f"{workdir}: ML Metadata has no push of version {version} (was it pushed from this workdir?)"
        )
    try:
        model = lineage.trained_model_of(store, pushed[-1])
        trainer = lineage.trainer_of(store, model)
    except lineage.UnknownModelError:
        raise LineageError(f"{workdir}: ML Metadata does not record the Trainer of version {version}") from None
    schema = metadata.input_artifact(store, trainer.id, "schema")
    examples = lineage.examples_of(store, trainer)
    statistics = lineage.statistics_of(store, examples) if examples else None
    if schema is None or statistics is None:
        raise LineageError(
            f"{workdir}: ML Metadata does not link version {version} to its schema and the "
            "statistics of its training examples"
        )
    evaluator = evaluation.evaluator_of(store, model)
    evaluated = metadata.output_artifact(store, evaluator.id, "evaluation") if evaluator else None
    return TrainingLineage(
        version=version,
        model_uri=model.uri,
        schema_file=local_path(schema.uri, workdir) / lineage.SCHEMA_FILE,
        train_statistics_file=lineage.statistics_file(str(local_path(statistics.uri, workdir))),
        examples_uri=str(local_path(examples.uri, workdir)),
        evaluation_uri=str(local_path(evaluated.uri, workdir)) if evaluated else None,
        spec=_run_spec(store, model),
    )


def _run_spec(store, model) -> dict:
    """The resolved spec of the newest pipeline run that trained or reused (cached) the model, or {}.

    A re-run whose Trainer is cached records its own spec, so a changed [monitor] section applies
    after `keel run` without retraining.
    """
    runs = [metadata.run_of(store, execution) for execution in metadata.producers(store, model.id)]
    recorded = [run for run in runs if run is not None and metadata.custom(run, "keel_spec")]
    newest = max(recorded, key=lambda c: (c.create_time_since_epoch, c.id), default=None)
    return json.loads(metadata.custom(newest, "keel_spec")) if newest else {}


def blessed_schema(workdir: Path) -> tuple[str, str] | None:
    """(version, schema file) of the newest pushed model in `workdir`: the schema it was trained on.

    None when nothing is pushed yet, or ML Metadata does not link that push to its schema.
    """
    if not metadata.store_path(workdir).exists():
        return None
    pushed = lineage.pushed_models(metadata.open_store(workdir))
    if not pushed:
        return None
    version = metadata.custom(pushed[-1], "pushed_version")
    try:
        found = training_lineage(workdir, version)
    except LineageError:
        return None
    return (version, str(found.schema_file)) if found.schema_file.is_file() else None
