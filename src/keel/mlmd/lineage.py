"""What produced a model, read from ML Metadata by walking events from the model artifact.

From the Trainer's Model artifact: back to the Transform, the ExampleGen examples, their statistics,
the schema and the borrowed weights; to the pipeline run that trained it (the resolved spec, data
files and code recorded by `keel run`); forward to the Evaluator's metrics and blessing, the
pushed versions and any other export of the model (e.g. LiteRT). The result is a `Lineage`;
`Lineage.to_dict()` is what `keel lineage --json` prints.
"""

import dataclasses
import json
from pathlib import Path

from keel.core.errors import KeelError
from keel.mlmd import store as metadata
from keel.mlmd import text
from keel.mlmd.evaluation import Evaluation, evaluation_of
from keel.pipeline.nodes import BASELINE, EVALUATOR, STATISTICS, TRAINER, TRANSFORM

SCHEMA_FILE = "schema.pbtxt"
STATISTICS_FILE = "FeatureStats.pb"


class UnknownModelError(KeelError):
    """A model reference (version, artifact id, run id, index) names nothing in the workdir."""


@dataclasses.dataclass(frozen=True)
class ModelRef:
    artifact_id: int
    uri: str
    created_ms: int


@dataclasses.dataclass(frozen=True)
class RunRef:
    id: str | None
    trainer_execution_id: int


@dataclasses.dataclass(frozen=True)
class SpecRecord:
    """The spec file the run was started from and the resolved spec (every default filled in)."""

    path: str | None
    sha256: str | None
    resolved: dict
    overrides: dict = dataclasses.field(default_factory=dict)  # `keel run --set`, by dotted key


@dataclasses.dataclass(frozen=True)
class ArtifactRef:
    artifact_id: int
    uri: str


@dataclasses.dataclass(frozen=True)
class HashedArtifact:
    """An artifact with the sha256 of its content (schema, transform graph, borrowed weights)."""

    artifact_id: int
    uri: str
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class Examples:
    """The ExampleGen output: its span, version and TFX's fingerprint of the input files."""

    artifact_id: int
    uri: str
    span: int | None
    version: int | None
    fingerprint: str | None


@dataclasses.dataclass(frozen=True)
class Data:
    """The data the run read: the spec's source, the span, the files with their sha256, rows per split."""

    source: str | None
    span: int | None
    files: list[dict]
    origin: dict | None
    examples: Examples | None
    statistics: ArtifactRef | None
    rows: dict[str, int]

    @property
    def file_sha256(self) -> dict[str, str]:
        """Data file path -> sha256."""
        return {f["path"]: f["sha256"] for f in self.files}


@dataclasses.dataclass(frozen=True)
class Training:
    steps: int | None
    eval_steps: int | None
    batch_size: int | None
    seed: int | None
    hparams: dict


@dataclasses.dataclass(frozen=True)
class Push:
    version: str
    destination: str
    artifact_id: int


@dataclasses.dataclass(frozen=True)
class Export:
    """An artifact another node derived from the model (a LiteRT export, for example)."""

    node: str
    output: str
    type: str
    artifact_id: int
    uri: str


@dataclasses.dataclass(frozen=True)
class Lineage:
    """Everything ML Metadata knows about what produced one Trainer model and what became of it.

    `code` is the code provenance recorded with the run (module, module_sha256, git_commit,
    module_modified_since_commit); runs recorded before keel kept it have no git_commit key.
    """

    model: ModelRef
    run: RunRef
    spec: SpecRecord
    data: Data
    schema: HashedArtifact | None
    transform_graph: HashedArtifact | None
    training: Training
    code: dict
    warm_start: HashedArtifact | None
    evaluation: Evaluation
    pushed: list[Push]
    exports: list[Export]

    def to_dict(self) -> dict:
        """The lineage as plain JSON-ready data (what `--json` prints)."""
        return dataclasses.asdict(self)

    @property
    def schema_file(self) -> Path | None:
        return Path(self.schema.uri) / SCHEMA_FILE if self.schema else None

    @property
    def train_statistics_file(self) -> Path | None:
        return statistics_file(self.data.statistics.uri) if self.data.statistics else None


def statistics_file(statistics_uri: str, split: str = "train") -> Path:
    """Where a StatisticsGen output keeps the statistics of one split."""
    return Path(statistics_uri) / f"Split-{split}" / STATISTICS_FILE


def split_rows(statistics_uri: str) -> dict[str, int]:
    """Rows per split, from the StatisticsGen output's FeatureStats.pb files."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    rows = {}
    for split_dir in sorted(Path(statistics_uri).glob("Split-*")):
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString((split_dir / STATISTICS_FILE).read_bytes())
        rows[split_dir.name.removeprefix("Split-")] = sum(d.num_examples for d in stats.datasets)
    return rows


# Finding the model


def pushed_models(store) -> list:
    """PushedModel artifacts that were actually pushed (blessed), oldest first."""
    return sorted(
        (a for a in store.get_artifacts_by_type("PushedModel") if metadata.custom(a, "pushed", 0)), key=lambda a: a.id
    )


def trained_model_of(store, artifact):
    """The Trainer's Model artifact behind `artifact` (a Model, or a PushedModel traced to its Pusher)."""
    if artifact.type == "PushedModel":
        pusher = metadata.producer(store, artifact.id)
        model = metadata.input_artifact(store, pusher.id, "model") if pusher else None
        if model is None:
            raise UnknownModelError(f"pushed model {artifact.id} has no recorded model input")
        return model
    if artifact.type != "Model":
        raise UnknownModelError(f"artifact {artifact.id} is a {artifact.type}; expected a Model or PushedModel")
    return artifact


def _model_trained_in(store, run):
    trainer = metadata.node_execution(store, run, TRAINER)
    return metadata.output_artifact(store, trainer.id, "model") if trainer else None


def model_of_run(store, run_name: str):
    """The Model the Trainer of pipeline run `run_name` produced (or reused from the cache); None if no such run."""
    run = metadata.run_context(store, run_name)
    if run is None:
        return None
    model = _model_trained_in(store, run)
    if model is None:
        raise UnknownModelError(f"run {run_name} trained no model (it stopped before the Trainer)")
    return model


def latest_model(store):
    """The model of the newest run that has one."""
    for run in reversed(metadata.runs(store)):
        model = _model_trained_in(store, run)
        if model is not None:
            return model
    raise UnknownModelError("no run in this workdir has trained a model yet")


def resolve_model(store, ref: str, by_artifact_id: bool = True):
    """The Trainer Model artifact for `ref`: `latest`, a pushed version, a run id or (optionally) an artifact id."""
    if ref == "latest":
        return latest_model(store)
    for pushed in pushed_models(store):
        if metadata.custom(pushed, "pushed_version") == ref:
            return trained_model_of(store, pushed)
    model = model_of_run(store, ref)
    if model is not None:
        return model
    if by_artifact_id and ref.isdigit():
        found = store.get_artifacts_by_id([int(ref)])
        if found:
            return trained_model_of(store, found[0])
    versions = ", ".join(metadata.custom(p, "pushed_version") for p in pushed_models(store)) or "none yet"
    raise UnknownModelError(
        f"model {ref!r}: no pushed version, run id or artifact id by that name; "
        f"expected latest or one of the pushed versions: {versions}"
    )


# Walking from the model


def trainer_of(store, model):
    """The Trainer execution that wrote `model`."""
    trainer = metadata.producer(store, model.id)
    if trainer is None:
        raise UnknownModelError(f"model {model.id} has no producing execution in ML Metadata")
    return trainer


def examples_of(store, trainer):
    """The ExampleGen examples behind the Trainer's transformed examples (the Transform's input), or None."""
    transformed = metadata.input_artifact(store, trainer.id, "examples")
    transform = metadata.producer(store, transformed.id) if transformed else None
    if transform is None or metadata.node_id(store, transform) != TRANSFORM:
        return None
    return metadata.input_artifact(store, transform.id, "examples")


def statistics_of(store, examples):
    """The StatisticsGen output that summarised `examples`, or None."""
    found = metadata.readers(store, examples.id, "examples", STATISTICS)
    return metadata.output_artifact(store, found[-1].id, "statistics") if found else None


def _downstream(store, model) -> tuple[list[Push], list[Export]]:
    """Pushed versions, and every other artifact derived from the model (LiteRT exports and the like)."""
    pushed, exports, seen = [], [], set()
    for executions in metadata.consumers(store, model.id).values():
        for execution in executions:
            node = metadata.node_id(store, execution)
            # Cached reuses repeat the outputs of the complete execution.
            if node in (EVALUATOR, BASELINE) or execution.last_known_state != execution.COMPLETE:
                continue
            for out_key, artifacts in metadata.outputs(store, execution.id).items():
                for artifact in artifacts:
                    if artifact.id in seen:
                        continue
                    seen.add(artifact.id)
                    if artifact.type == "PushedModel":
                        if metadata.custom(artifact, "pushed", 0):
                            pushed.append(
                                Push(
                                    metadata.custom(artifact, "pushed_version"),
                                    metadata.custom(artifact, "pushed_destination"),
                                    artifact.id,
                                )
                            )
                    elif node != TRAINER:  # a Trainer read this model as its warm start
                        exports.append(Export(node, out_key, artifact.type, artifact.id, artifact.uri))
    return pushed, exports


def _json(holder, key: str, default=None):
    value = metadata.custom(holder, key) if holder is not None else None
    return json.loads(value) if value else default


def _hashed(artifact, sha256: str | None) -> HashedArtifact | None:
    return HashedArtifact(artifact.id, artifact.uri, sha256) if artifact is not None else None


def _sha256_of(path: Path) -> str | None:
    from keel.core.fingerprint import path_sha256

    return path_sha256(path) if path.exists() else None


def lineage(store, model) -> Lineage:
    """Everything ML Metadata knows about what produced `model` (a Trainer Model artifact)."""
    trainer = trainer_of(store, model)
    run = metadata.run_of(store, trainer)
    config = _json(trainer, "custom_config", {})
    schema = metadata.input_artifact(store, trainer.id, "schema")
    transform_graph = metadata.input_artifact(store, trainer.id, "transform_graph")
    warm = metadata.input_artifact(store, trainer.id, "base_model")
    examples = examples_of(store, trainer)
    statistics = statistics_of(store, examples) if examples else None
    recorded = _json(run, "keel_data", {})
    # Runs recorded before keel_code existed: what the Trainer's config knows (no git commit).
    code = _json(run, "keel_code") or {"module": config.get("module"), "module_sha256": config.get("module_sha256")}
    pushed, exports = _downstream(store, model)
    return Lineage(
        model=ModelRef(model.id, model.uri, model.create_time_since_epoch),
        run=RunRef(run.name if run else None, trainer.id),
        spec=SpecRecord(
            metadata.custom(run, "keel_spec_path") if run else None,
            metadata.custom(run, "keel_spec_sha256") if run else None,
            _json(run, "keel_spec", {}),
            _json(run, "keel_spec_overrides", {}),
        ),
        data=Data(
            source=recorded.get("source"),
            span=recorded.get("span"),
            files=recorded.get("files", []),
            origin=recorded.get("origin"),
            examples=Examples(
                examples.id,
                examples.uri,
                metadata.prop(examples, "span"),
                metadata.prop(examples, "version"),
                metadata.prop(examples, "input_fingerprint"),
            )
            if examples
            else None,
            statistics=ArtifactRef(statistics.id, statistics.uri) if statistics else None,
            rows=split_rows(statistics.uri) if statistics else {},
        ),
        schema=_hashed(schema, _sha256_of(Path(schema.uri) / SCHEMA_FILE) if schema else None),
        transform_graph=_hashed(transform_graph, _sha256_of(Path(transform_graph.uri)) if transform_graph else None),
        training=Training(
            steps=_json(trainer, "train_args", {}).get("num_steps"),
            eval_steps=_json(trainer, "eval_args", {}).get("num_steps"),
            batch_size=config.get("batch_size"),
            seed=config.get("seed"),
            hparams=config.get("hparams", {}),
        ),
        code=code,
        warm_start=_hashed(warm, metadata.custom(warm, "sha256") if warm else None),
        evaluation=evaluation_of(store, model),
        pushed=pushed,
        exports=exports,
    )


def model_lineage(workdir: Path, ref: str = "latest") -> Lineage:
    """The lineage of the model `ref` (latest, a pushed version, a run id or an artifact id) in `workdir`."""
    store = metadata.open_store(workdir)
    return lineage(store, resolve_model(store, ref))


# Text


def _code_line(code: dict) -> str:
    commit = code.get("git_commit")
    if "git_commit" not in code:
        where = "git commit not recorded"
    elif commit:
        where = f"git {text.short_sha(commit)}" + (
            ", module not as committed" if code.get("module_modified_since_commit") else ""
        )
    else:
        where = "not in a git repository"
    return f"  code: {code['module']} (sha256 {text.short_sha(code['module_sha256'])}, {where})"


def _evaluation_lines(ev: Evaluation) -> list[str]:
    if not ev.metrics:
        return ["  eval: not evaluated"]
    shown = ", ".join(f"{k} {text.number(v)}" for k, v in ev.values.items())
    blessed = {True: "blessed", False: "not blessed", None: "no blessing"}[ev.blessed]
    lines = [f"  eval: {shown}; {blessed}"]
    if ev.blessed is False:
        lines += [f"    {reason}" for reason in ev.blessing_reasons]
    if ev.changes:
        changes = ", ".join(f"{k} {text.signed(v)}" for k, v in ev.changes.items())
        lines.append(f"    vs baseline model {ev.baseline_model_id}: {changes}")
    return lines


def _overrides_text(overrides: dict) -> str:
    return f", with --set {', '.join(f'{k}={json.dumps(v)}' for k, v in overrides.items())}" if overrides else ""


def _exported_lines(origin: dict) -> list[str]:
    """Where a span written by `keel logs export` came from: model versions, log files, label file."""
    changed = "" if origin.get("matches") else "; the span's file has changed since"
    lines = [
        f"    exported from the request logs of {', '.join(origin['model'])} version(s) "
        f"{', '.join(origin['versions'])}: {origin['rows']} rows, {origin['unlabelled_dropped']} unlabelled "
        f"dropped ({origin['lineage_file']}{changed})"
    ]
    lines += [f"      log: {f['path']} (sha256 {text.short_sha(f['sha256'])})" for f in origin["logs"]]
    labels = origin.get("labels")
    lines.append(
        f"      labels: {labels['path']} (sha256 {text.short_sha(labels['sha256'])})"
        if labels
        else "      labels: from the logged rows"
    )
    return lines


def render(record: Lineage) -> str:
    """The lineage as readable text."""
    m, spec, data, training = record.model, record.spec, record.data, record.training
    lines = [
        f"model {m.artifact_id} ({m.uri})",
        f"  run: {record.run.id}",
        f"  spec: {spec.path} (sha256 {text.short_sha(spec.sha256)}){_overrides_text(spec.overrides)}",
    ]
    span = f", span {data.span}" if data.span is not None else ""
    if data.examples:
        span += f" (examples {data.examples.artifact_id})"
    lines.append(f"  data: {data.source}{span}")
    for f in data.files:
        lines.append(f"    {f['path']} (sha256 {text.short_sha(f['sha256'])})")
    if data.origin and data.origin.get("exported_from") == "request_logs":
        lines += _exported_lines(data.origin)
    if data.rows:
        lines.append(
            "    rows: "
            + ", ".join(f"{k} {v}" for k, v in sorted(data.rows.items(), key=lambda kv: (kv[0] != "train", kv[0])))
        )
    if record.schema:
        lines.append(f"  schema: {record.schema.uri} (sha256 {text.short_sha(record.schema.sha256)})")
    if record.transform_graph:
        tg = record.transform_graph
        lines.append(f"  transform graph: {tg.uri} (sha256 {text.short_sha(tg.sha256)})")
    lines.append(
        f"  training: steps {training.steps}, eval_steps {training.eval_steps}, batch_size "
        f"{training.batch_size}, seed {training.seed}, hparams {json.dumps(training.hparams)}"
    )
    lines.append(_code_line(record.code))
    warm = record.warm_start
    lines.append(
        f"  borrowed weights: {warm.uri} (sha256 {text.short_sha(warm.sha256)})" if warm else "  borrowed weights: none"
    )
    lines += _evaluation_lines(record.evaluation)
    lines.append("  pushed: " + (", ".join(f"{p.version} ({p.destination})" for p in record.pushed) or "no"))
    for e in record.exports:
        lines.append(f"  export: {e.node}.{e.output} {e.type} {e.uri}")
    return "\n".join(lines)
