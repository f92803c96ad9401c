"""The typed pipeline spec: one TOML file, validated into pydantic models.

Every key has a default except `pipeline.name`, `data.source`, `data.label` and `model.module`.
Unknown keys are errors. Relative paths are resolved against the spec file's directory.
Errors are raised as SpecError with one line per problem, each naming the file, the field path,
what was received and what was expected.
"""

import difflib
import hashlib
import json
import sys
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

from keel.core.errors import SpecError
from keel.core.tasks import METRICS, MetricName, metric_of, metric_problem, threshold_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (the TFX 1.16 py3.10 stack): the same parser, as a package
    import tomli as tomllib


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class PipelineSection(_Section):
    """`[pipeline]`: what the pipeline is called."""

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        max_length=63,
        description="letters, digits, '_' or '-', starting with a letter; names the workdir "
        "(.keel/NAME) and the served model",
    )


class DataSection(_Section):
    """`[data]`: where the examples come from and what to predict."""

    source: str = Field(
        description="builtin:penguins, builtin:taxi, builtin:digits, builtin:breast_cancer, builtin:digits_images, "
        "a path or glob of .csv or .tfrecord[.gz] (tf.Example) files, wildcards in the file name only, or a "
        "folder of pictures, DIR/LABEL/*.png|jpg|jpeg (with features.image); "
        "{SPAN} in the path selects data versions (TFX spans), e.g. "
        "data/span-{SPAN}/*.csv: the latest span, or `keel run --span N`"
    )
    label: str = Field(description="the column to predict; must be a column of the data")
    schema_file: str | None = Field(
        default=None,
        alias="schema",
        description="a schema.pbtxt to validate against (ImportSchemaGen); otherwise SchemaGen infers one",
    )
    eval_percent: int = Field(default=20, ge=1, le=50, description="share of rows hashed into the eval split")
    new_columns: Literal["warn", "error"] = Field(
        default="warn",
        description="a column this span has and the blessed model's training data did not: warn "
        "(the model reads only the spec's features, so the run goes on) or error (DataGate stops the run)",
    )
    task: Literal["auto", "classification", "regression"] = Field(
        default="auto",
        description="auto: a text label is classification, a numeric label regression (the run says which "
        "and why); declare classification for numeric class labels (0/1, digits)",
    )


class FeaturesSection(_Section):
    """`[features]`: how each input column is encoded. With both lists empty, every column but the label
    is used: text columns categorical, numbers numeric."""

    numeric: list[str] = Field(
        default_factory=list, description="z-scored over the training split; a missing value becomes the mean"
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="vocabulary-encoded (strings or integers); missing is its own value, unseen values share one index",
    )
    image: str | None = Field(
        default=None,
        description="the column of encoded pictures (PNG or JPEG bytes; a folder-of-pictures source writes "
        "them under this name): decoded, resized to image_size and scaled to [0, 1] inside the graph",
    )
    image_size: list[Annotated[int, Field(gt=0)]] | None = Field(
        default=None, min_length=2, max_length=2, description="[height, width] the pictures are resized to"
    )
    channels: Literal[1, 3] = Field(
        default=3, description="1 (grayscale) or 3 (RGB): every picture must have this many"
    )


class ModelSection(_Section):
    """`[model]`: the user's model code and what it is given."""

    module: str = Field(
        description="path of a Python file defining build_model(hparams, features); it may "
        "define preprocessing_fn(inputs)"
    )
    hparams: dict[str, Any] = Field(
        default_factory=dict,
        description="passed to build_model as a dict; learning_rate (default 0.001) sets Adam's rate",
    )
    warm_start: str | None = Field(
        default=None,
        description="borrowed weights loaded before training: a "
        "SavedModel directory (e.g. a pushed version), a .weights.h5 or a .keras file; "
        "hashed and recorded in lineage",
    )


def _jit_setting(value: Any) -> Any:
    # One clear error instead of one per member of the union.
    if value is True or value is False or value == "auto":
        return value
    raise PydanticCustomError("jit_compile", 'input should be "auto", true or false')


class TrainSection(_Section):
    """`[train]`: how long, on what, at which precision."""

    steps: int = Field(default=500, ge=1, description="training steps")
    eval_steps: int = Field(default=50, ge=1, description="validation steps at the end of training")
    batch_size: int = Field(
        default=64, ge=1, le=65536, description="per replica: the global batch is batch_size x replicas"
    )
    seed: int = Field(
        default=42, ge=0, description="seeds Python, NumPy and TensorFlow, so a re-run trains the same model"
    )
    backend: Literal["tensorflow", "jax", "auto"] = Field(
        default="tensorflow",
        description="Keras backend that trains the model: tensorflow, jax (every step compiled by jax.jit; the "
        "trained weights are exported to the same TensorFlow SavedModel), or auto (jax where JAX sees a TPU "
        "that TensorFlow cannot use, else tensorflow)",
    )
    jit_compile: Annotated[Literal["auto"] | StrictBool, BeforeValidator(_jit_setting)] = Field(
        default="auto", description="XLA for the training step: true, false, or auto (time both, pick the faster)"
    )
    jit_probe_budget: float = Field(
        default=0.05,
        gt=0,
        description='with jit_compile = "auto": the most timing XLA may cost, as a share of the predicted training '
        "time; where it would cost more, graph mode is kept without timing XLA (a large value, e.g. 10, always times)",
    )
    accelerator: Literal["auto", "cpu", "gpu", "tpu"] = Field(
        default="auto", description="auto: a TPU if this machine has one, else every GPU, else the CPU"
    )
    tpu: str = Field(
        default="local",
        min_length=1,
        description="with a TPU: 'local' (a TPU VM), a Cloud TPU name, or grpc://HOST:PORT",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="training processes (TensorFlow's MultiWorkerMirroredStrategy, synchronous): a local run "
        "starts them on 127.0.0.1, a Vertex AI run gets a worker pool of workers - 1 machines beside the chief",
    )
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = Field(
        default="auto", description="auto: mixed_bfloat16 on TPU, mixed_float16 on GPUs with tensor cores, else float32"
    )
    label_scaling: Literal["zscore", "none"] = Field(
        default="zscore",
        description="regression: zscore trains on the z-scored label and un-scales in the model, so predictions "
        "are in the label's units; none trains on the label as it is",
    )


class EvalSection(_Section):
    """`[eval]`: when the Evaluator blesses a model (and so the Pusher pushes it)."""

    metric: MetricName | None = Field(
        default=None,
        description="the metric TFMA computes on the eval split and gates on; unset: sparse_categorical_accuracy "
        "(classification) or root_mean_squared_error (regression). Binary labels: auc, precision, recall, "
        "binary_accuracy; regression: mean_squared_error, mean_absolute_error, root_mean_squared_error",
    )
    threshold: float | None = Field(
        default=None,
        description="absolute bar for blessing: a lower bound for accuracies and AUC (higher is better), "
        "an upper bound for errors (lower is better); unset: none",
    )
    max_regression: float = Field(
        default=0.01,
        ge=0.0,
        description="largest allowed change for the worse vs the latest model blessed before this one: "
        "a drop of an accuracy, a rise of an error (in the metric's units)",
    )


class MonitorSection(_Section):
    """`[monitor]`: the alert thresholds of `keel monitor`, read from the spec recorded with the model's run."""

    skew_threshold: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="training vs serving: Jensen-Shannon divergence (numbers), L-infinity distance (strings)",
    )
    drift_threshold: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="the window before `keel monitor --since` vs the one after, measured the same way",
    )
    accuracy_drop: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="classification: largest allowed drop of live accuracy (--labels) below the eval accuracy",
    )
    error_increase: float = Field(
        default=0.1,
        ge=0.0,
        description="regression: largest allowed rise of the live error (--labels) over the eval error, "
        "as a fraction of it (0.1: 10% worse)",
    )
    false_alarm_rate: float = Field(
        default=0.01,
        gt=0.0,
        lt=0.5,
        description="how often a check may alert on chance alone: skew and drift alert only above the value "
        "that random windows of training rows of the same size exceed this often (the noise floor)",
    )


LITE_VARIANTS = ("float32", "float16", "dynamic", "int8")  # keel.export.variants converts each of these
LiteVariant = Literal[LITE_VARIANTS]


class LiteSection(_Section):
    """`[export.lite]`: the parity-gated LiteRT export after the Pusher, on blessed, pushed models."""

    variants: list[LiteVariant] = Field(
        default_factory=lambda: list(LITE_VARIANTS),
        min_length=1,
        description="LiteRT variants to convert and compare with the SavedModel",
    )
    choose: Literal["smallest", "most_accurate"] = Field(
        default="smallest", description="which of the variants that pass the gate is exported"
    )
    max_accuracy_drop: float = Field(
        default=0.005, ge=0.0, le=1.0, description="largest allowed accuracy drop vs the SavedModel on the eval split"
    )
    max_size_bytes: int | None = Field(default=None, ge=1, description="largest allowed .tflite size")
    representative_rows: int = Field(
        default=200, ge=1, le=100_000, description="train-split rows that calibrate full int8 quantization"
    )
    max_abs_diff: float | None = Field(
        default=None,
        gt=0.0,
        description="regression: largest allowed absolute difference of any prediction from the SavedModel's, "
        "in the label's units; unset: 1% of the eval labels' standard deviation",
    )


class ExportSection(_Section):
    """`[export]`: exports besides the pushed SavedModel."""

    lite: LiteSection | None = Field(default=None, description="a parity-gated LiteRT export; absent: none")


BeamRunner = Literal["DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner"]


class BeamSection(_Section):
    """`[beam]`: the Beam runner of the data components (ExampleGen, StatisticsGen, Transform, Evaluator)."""

    runner: BeamRunner = Field(default="DirectRunner", description="the Beam runner of the data components")
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = Field(
        default="in_memory", description="DirectRunner only: multi_processing uses several cores"
    )
    direct_num_workers: int = Field(default=1, ge=0, le=1024, description="DirectRunner workers; 0: one per core")
    args: list[str] = Field(
        default_factory=list, description="more Beam pipeline options, e.g. --flink_master=host:8081"
    )


class CloudTrainerSection(_Section):
    """`[cloud.trainer]`: the Vertex AI machine the Trainer runs on (`keel compile --target vertex`)."""

    machine_type: str = Field(default="n1-standard-4", description="the Vertex AI training machine")
    accelerator_type: str | None = Field(
        default=None, description="e.g. NVIDIA_TESLA_T4, NVIDIA_L4, TPU_V3, TPU_V5_LITEPOD"
    )
    accelerator_count: int = Field(
        default=0, ge=0, le=64, description="how many accelerators, e.g. 2 NVIDIA_TESLA_T4 or 8 TPU_V3"
    )
    tpu_topology: str | None = Field(default=None, pattern=r"^\d+(x\d+){1,2}$", description="e.g. 2x2 (TPU v5e / v6e)")
    image: str | None = Field(
        default=None,
        description="the Trainer job's image (default: [cloud] image); with backend jax or auto on a TPU, "
        "one with jax[tpu] (docs/cloud.md)",
    )

    def on_tpu(self) -> bool:
        """Whether this machine is a TPU VM (a TPU machine type, topology or accelerator)."""
        return bool(
            self.tpu_topology
            or self.machine_type.startswith(("ct", "cloud-tpu"))
            or (self.accelerator_type or "").upper().startswith("TPU")
        )


class CloudSection(_Section):
    """`[cloud]`: where `keel compile` puts a run on Vertex AI Pipelines or Kubeflow Pipelines."""

    project: str | None = Field(default=None, description="Google Cloud project of the Vertex AI pipeline")
    region: str = Field(default="us-central1", description="Google Cloud region of the Vertex AI pipeline")
    pipeline_root: str | None = Field(
        default=None, pattern=r"^gs://", description="gs:// root for artifacts and pushed models"
    )
    image: str | None = Field(default=None, description="container image with keel and the project installed")
    data: str | None = Field(default=None, pattern=r"^gs://", description="gs:// location of the data in the cloud")
    module: str | None = Field(default=None, description="the model module's path inside the image")
    trainer: CloudTrainerSection = Field(
        default=CloudTrainerSection(), description="the Vertex AI training machine (below)"
    )


class Spec(_Section):
    """A whole spec file: one section per concern; only [pipeline], [data] and [model] are required."""

    pipeline: PipelineSection
    data: DataSection
    features: FeaturesSection = FeaturesSection()
    model: ModelSection
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()
    monitor: MonitorSection = MonitorSection()
    export: ExportSection = ExportSection()
    beam: BeamSection = BeamSection()
    cloud: CloudSection = CloudSection()

    _path: Path = pydantic.PrivateAttr(default=None)
    _task: Any = pydantic.PrivateAttr(default=None)
    _overrides: dict = pydantic.PrivateAttr(default_factory=dict)

    @property
    def path(self) -> Path:
        """The spec file this was loaded from (absolute)."""
        return self._path

    def resolve(self, relative: str) -> Path:
        """Resolves a path written in the spec against the spec file's directory."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self._path.parent / p).resolve()

    @property
    def overrides(self) -> dict[str, Any]:
        """The `--set KEY=VALUE` overrides applied on top of the file, by dotted key (empty: none)."""
        return dict(self._overrides)

    @property
    def task(self):
        """The resolved task (keel.data.task.ResolvedTask): `[data] task`, or what the label's values say.

        Resolved on first use from the data source, which must then be readable.
        """
        if self._task is None:
            from keel.data.sources import resolve_source
            from keel.data.task import resolve_task

            self._task = resolve_task(self.data.task, resolve_source(self), self.data.label)
        return self._task

    @property
    def metric(self):
        """The eval metric (keel.core.tasks.MetricInfo): `[eval] metric`, or the task's default."""
        return metric_of(self.eval.metric, self.task.task)

    def default_workdir(self) -> Path:
        return self._path.parent / ".keel" / self.pipeline.name

    def resolved(self) -> dict:
        """The spec with every default filled in, as plain data (what is recorded in ML Metadata)."""
        return self.model_dump(mode="json", by_alias=True)

    def sha256(self) -> str:
        return hashlib.sha256(self._path.read_bytes()).hexdigest()


def _allowed_keys(loc: tuple) -> list[str]:
    model: Any = Spec
    for part in loc:
        field = model.model_fields.get(part) or next((f for f in model.model_fields.values() if f.alias == part), None)
        annotation = getattr(field, "annotation", None)
        # An optional section (`X | None`) lists the keys of X.
        models = [
            a
            for a in (typing.get_args(annotation) or (annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not models:
            return []
        model = models[0]
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(error: dict, file: str, overridden: Iterable[str] = ()) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc)
    if any(path == key or path.startswith(key + ".") for key in overridden):
        file = "--set"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        section = f"[{'.'.join(map(str, loc[:-1]))}]" if len(loc) > 1 else "the top level"
        return f"{file}: {path}: unknown key in {section}{hint}; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return f"{file}: {path}: required key is missing"
    expected = error["msg"]
    expected = expected[0].lower() + expected[1:]
    return f"{file}: {path}: got {error['input']!r}; {expected}"


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings (`keel run --set`) as {dotted key: value}.

    VALUE is read as a TOML value (800, 0.02, true, [64, 32], "text"); anything that is not one is
    taken as a string, so `--set data.source=data/*.csv` needs no quotes.
    """
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part.strip() for part in key.split(".")):
            raise SpecError(f"--set {item}: expected KEY=VALUE with a dotted key, e.g. train.steps=800")
        try:
            overrides[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key] = value.strip()
    return overrides


def _apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    for dotted, value in overrides.items():
        *tables, key = dotted.split(".")
        table = raw
        for i, name in enumerate(tables):
            table = table.setdefault(name, {})
            if not isinstance(table, dict):
                raise SpecError(f"--set {dotted}: {'.'.join(tables[: i + 1])} is a value, not a table")
        table[key] = value
    return raw


def parse_spec(text: str, path: Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Parses and validates spec TOML text, with `overrides` (dotted key -> value) applied on top.

    Raises SpecError with one line per problem; a problem in an overridden key names `--set`.
    """
    name = path.name
    overrides = overrides or {}
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{name}: not valid TOML: {e}") from None
    try:
        spec = Spec.model_validate(_apply_overrides(raw, overrides))
    except pydantic.ValidationError as e:
        raise SpecError("\n".join(_describe(err, name, overrides) for err in e.errors())) from None
    spec._path = path.resolve()
    spec._overrides = dict(overrides)
    problems = _eval_problems(spec, None if spec.data.task == "auto" else spec.data.task)
    if problems:
        raise SpecError("\n".join(f"{name}: {p}" for p in problems))
    return spec


def _eval_problems(spec: Spec, task: str | None, classes: int | None = None) -> list[str]:
    """Where `[eval]` does not fit the task (None: not known yet; the metric then implies it)."""
    metric = spec.eval.metric
    if task is None:
        if metric is None:
            return []
        task = METRICS[metric].task
    elif problem := metric_problem(metric, task, classes):
        return [f"eval.metric: {problem}"]
    problem = threshold_problem(metric, task, spec.eval.threshold, spec.eval.max_regression)
    return [problem] if problem else []


def load_spec(path: str | Path, check_files: bool = True, overrides: dict[str, Any] | None = None) -> Spec:
    """Loads the spec at `path` (with `overrides`, see parse_overrides, on top); with `check_files`, also
    checks it against the files it names.

    Checks: the model module and schema file exist; the data source exists; the label and every
    listed feature are columns of the data; no feature is listed twice or is the label.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except (UnicodeDecodeError, IsADirectoryError) as e:
        raise SpecError(f"{path}: cannot read the spec as UTF-8 text ({e.__class__.__name__})") from None
    spec = parse_spec(text, path, overrides)
    if check_files:
        check_against_files(spec)
    return spec


def check_against_files(spec: Spec) -> None:
    """Raises SpecError (one line per problem) where the spec disagrees with the files it names."""
    from keel.data.sources import resolve_source  # data reads files; spec parsing alone does not need it

    name = spec.path.name
    problems = []
    module = spec.resolve(spec.model.module)
    if not module.is_file():
        problems.append(f"{name}: model.module: {spec.model.module!r} does not exist (looked for {module})")
    if spec.model.warm_start:
        from keel.executors.warm_start import check_warm_start

        try:
            check_warm_start(spec.resolve(spec.model.warm_start), spec.model.warm_start)
        except SpecError as e:
            problems.append(f"{name}: {e}")
    if spec.data.schema_file:
        problem = _schema_problem(spec.resolve(spec.data.schema_file), spec.data.schema_file)
        if problem:
            problems.append(f"{name}: data.schema: {problem}")
    try:
        source = resolve_source(spec)
    except SpecError as e:
        problems.append(f"{name}: {e}")
        source = None
    if source is not None:
        columns = source.columns
        shown = ", ".join(columns)
        if spec.data.label not in columns:
            problems.append(
                f"{name}: data.label: {spec.data.label!r} is not a column of {spec.data.source}; "
                f"expected one of: {shown}"
            )
        for kind in ("numeric", "categorical"):
            for feature in getattr(spec.features, kind):
                if feature not in columns:
                    problems.append(
                        f"{name}: features.{kind}: {feature!r} is not a column of "
                        f"{spec.data.source}; expected one of: {shown}"
                    )
    if source is not None and spec.data.label in source.columns:
        task = spec.task
        classes = task.distinct if task.task == "classification" else None
        problems += [f"{name}: {p}" for p in _eval_problems(spec, task.task, classes)]
        if task.label_kind is None:
            problems.append(f"{name}: data.label: {spec.data.label!r} has no values in {spec.data.source}")
        elif task.task == "regression" and task.label_kind == "string":
            problems.append(
                f"{name}: data.label: {spec.data.label!r} holds text but data.task is regression; "
                "a regression label must be numeric"
            )
    features = spec.features
    if features.image is not None:
        if features.image_size is None:
            problems.append(f"{name}: features.image_size: required with features.image, as [height, width]")
        if features.image == spec.data.label or features.image in [*features.numeric, *features.categorical]:
            problems.append(f"{name}: features.image: {features.image!r} is the label or another feature")
        if source is not None and features.image not in source.columns:
            problems.append(f"{name}: features.image: {features.image!r} is not a column of {spec.data.source}")
    elif features.image_size is not None:
        problems.append(f"{name}: features.image_size: set without features.image (the column of pictures)")
    both = set(spec.features.numeric) & set(spec.features.categorical)
    for feature in sorted(both):
        problems.append(f"{name}: features: {feature!r} is listed as both numeric and categorical")
    for kind in ("numeric", "categorical"):
        if spec.data.label in getattr(spec.features, kind):
            problems.append(f"{name}: features.{kind}: the label {spec.data.label!r} cannot also be a feature")
    if problems:
        raise SpecError("\n".join(problems))


def _schema_problem(path: Path, shown: str) -> str | None:
    """Why the schema file at `path` cannot be used (None when it parses as a TFMD Schema)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    if not path.is_file():
        return f"{shown!r} does not exist"
    try:
        schema = text_format.Parse(path.read_text(encoding="utf-8"), schema_pb2.Schema())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        return f"{shown!r} is not a schema.pbtxt (text-format tensorflow_metadata Schema): {e}"
    if not schema.feature:
        return f"{shown!r} declares no features; expected a schema.pbtxt as SchemaGen writes it"
    return None


def to_toml(data: dict) -> str:
    """Renders a resolved spec (nested dicts of scalars and lists) as TOML."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items() if x is not None) + " }"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    lines = []
    for section, body in data.items():
        lines.append(f"[{section}]")
        for key, v in body.items():
            if v is None:
                lines.append(f"# {key} is not set")
            else:
                lines.append(f"{key} = {value(v)}")
        lines.append("")
    return "\n".join(lines)
