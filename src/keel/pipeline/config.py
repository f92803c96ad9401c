"""What each component is told about the spec: typed, frozen config objects, built once from the spec.

The factory builds one object per component (`gate_config`, `transform_config`, `trainer_config`,
`lite_export_config`), writes it into the component's `custom_config` / config parameter with
`encode`, and the executor reads it back with `decode`. Each object holds only what its component
depends on, so TFX's cache re-runs exactly the components a spec change affects. Defaults live in
the spec alone: every field here is required.
"""

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any, Literal

from keel.core.errors import KeelError
from keel.core.modules import load_module, module_sha256
from keel.core.spec import Spec


@dataclasses.dataclass(frozen=True)
class ModelCode:
    """The user's model module as the executors see it: its path there, its content hash, its hooks."""

    module: str
    module_sha256: str
    user_preprocessing: bool


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """DataGate: the task, the label and the declared feature columns to check the data against."""

    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    task: str
    new_columns: str  # "warn" or "error": a column the blessed model was not trained on
    workdir: str | None = None  # a local run's workdir: its ML Metadata names the blessed model's schema


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Transform: the task, the features and label, and the model module only when it defines preprocessing_fn."""

    task: str
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    image: str | None  # the picture column, decoded to image_shape (height, width, channels); () without
    image_shape: tuple[int, ...]
    preprocessing_module: str | None
    preprocessing_sha256: str | None


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Trainer (keel.executors.trainer.run_fn): the task, the model code, its hyperparameters and `[train]`."""

    task: str
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    image: str | None
    image_shape: tuple[int, ...]
    module: str
    module_sha256: str
    user_preprocessing: bool
    hparams: dict[str, Any]
    batch_size: int
    seed: int
    jit_compile: Literal["auto"] | bool
    jit_probe_budget: float
    accelerator: str
    tpu: str
    precision: str
    label_scaling: str
    metric: str
    backend: str
    workers: int


@dataclasses.dataclass(frozen=True)
class LiteExportConfig:
    """LiteExporter: the task, the label and `[export.lite]`'s conversion and gate policy."""

    task: str
    label: str
    variants: tuple[str, ...]
    choose: str
    max_accuracy_drop: float
    max_abs_diff: float | None
    max_size_bytes: int | None
    representative_rows: int


def model_code(spec: Spec, module: str) -> ModelCode:
    """The spec's model module, hashed and inspected here, at path `module` where the executors run."""
    path = spec.resolve(spec.model.module)
    return ModelCode(
        module=module,
        module_sha256=module_sha256(path),
        user_preprocessing=callable(getattr(load_module(path), "preprocessing_fn", None)),
    )


def gate_config(spec: Spec, workdir: str | None = None) -> GateConfig:
    """DataGate's config from the spec, and the workdir of a local run (for the blessed model's schema)."""
    return GateConfig(
        spec.data.label,
        tuple(spec.features.numeric),
        tuple(spec.features.categorical),
        spec.task.task,
        spec.data.new_columns,
        workdir,
    )


def image_shape(spec: Spec) -> tuple[int, ...]:
    """(height, width, channels) of the spec's pictures; () when it has none."""
    features = spec.features
    return (*features.image_size, features.channels) if features.image else ()


def transform_config(spec: Spec, code: ModelCode) -> TransformConfig:
    """Transform's config: a change to a module without preprocessing_fn leaves Transform cached."""
    return TransformConfig(
        spec.task.task,
        spec.data.label,
        tuple(spec.features.numeric),
        tuple(spec.features.categorical),
        image=spec.features.image,
        image_shape=image_shape(spec),
        preprocessing_module=code.module if code.user_preprocessing else None,
        preprocessing_sha256=code.module_sha256 if code.user_preprocessing else None,
    )


def trainer_config(spec: Spec, code: ModelCode) -> TrainerConfig:
    """The Trainer's config (steps are in its train_args and eval_args, not here)."""
    train = spec.train
    return TrainerConfig(
        task=spec.task.task,
        label=spec.data.label,
        numeric=tuple(spec.features.numeric),
        categorical=tuple(spec.features.categorical),
        image=spec.features.image,
        image_shape=image_shape(spec),
        module=code.module,
        module_sha256=code.module_sha256,
        user_preprocessing=code.user_preprocessing,
        hparams=dict(spec.model.hparams),
        batch_size=train.batch_size,
        seed=train.seed,
        jit_compile=train.jit_compile,
        jit_probe_budget=train.jit_probe_budget,
        accelerator=train.accelerator,
        tpu=train.tpu,
        precision=train.precision,
        label_scaling=train.label_scaling,
        metric=spec.metric.name,
        backend=train.backend,
        workers=train.workers,
    )


def lite_export_config(spec: Spec) -> LiteExportConfig | None:
    """LiteExporter's config, or None when the spec has no [export.lite]."""
    lite = spec.export.lite
    if lite is None:
        return None
    return LiteExportConfig(
        spec.task.task,
        spec.data.label,
        tuple(lite.variants),
        lite.choose,
        lite.max_accuracy_drop,
        lite.max_abs_diff,
        lite.max_size_bytes,
        lite.representative_rows,
    )


def encode(config) -> dict[str, Any]:
    """A config object as plain JSON data: what goes into a component's custom_config or config parameter."""
    return json.loads(json.dumps(dataclasses.asdict(config), sort_keys=True))


def decode(config_class: type, data: Mapping[str, Any] | str):
    """Reads a config object back from what `encode` wrote (a mapping, or its JSON text).

    Keys that are not fields are ignored: a custom_config may carry the orchestrator's own keys too
    (a Vertex AI Trainer's job placement).
    """
    values = json.loads(data) if isinstance(data, str) else data
    hints = typing.get_type_hints(config_class)
    missing = [f.name for f in dataclasses.fields(config_class) if f.name not in values]
    if missing:
        raise KeelError(
            f"{config_class.__name__}: the component's config lacks {', '.join(missing)}; it was "
            "written by another keel version: run the pipeline again with this one"
        )
    picked = {}
    for field in dataclasses.fields(config_class):
        value = values[field.name]
        picked[field.name] = tuple(value) if typing.get_origin(hints[field.name]) is tuple else value
    return config_class(**picked)
