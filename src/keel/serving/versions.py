"""The versions under WORKDIR/serving/NAME/ (TF Serving's layout), which one to serve, and loading it.

The served version is the registry's production version when the registry marks one, else the
newest; the registry's stages are also the versions' labels (`labels`). A version directory is only loaded once its contents stop changing between two looks, so
a push still being copied is never half-loaded.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from keel.core.errors import ServingError

log = logging.getLogger("keel.serve")


def model_root(workdir: Path, name: str | None) -> tuple[str, Path]:
    """(model name, WORKDIR/serving/NAME); the name may be omitted when the workdir serves one model."""
    serving = Path(workdir) / "serving"
    if not serving.is_dir():
        raise ServingError(f"{workdir}: no serving/ directory (pass --workdir, the directory `keel run` pushed to)")
    names = sorted(p.name for p in serving.iterdir() if p.is_dir())
    if name is None:
        if len(names) != 1:
            raise ServingError(
                f"{serving}: holds {len(names)} models ({', '.join(names) or 'none'}); pick one with --model"
            )
        name = names[0]
    if name not in names:
        raise ServingError(f"{serving}: no model {name!r}; expected one of: {', '.join(names) or 'none pushed yet'}")
    return name, serving / name


def versions(root: Path) -> list[str]:
    """Version directory names holding a SavedModel, oldest first (TF Serving orders them as integers)."""
    found = (
        [p.name for p in root.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
        if root.is_dir()
        else []
    )
    return sorted(found, key=int)


def labels(workdir: Path | None, name: str) -> dict[str, str]:
    """The registry's stages as version labels of model `name`: {stage: version directory name}.

    `production` names the one production version; `candidate` and `archived` name the newest version
    in that stage. A stage no version is in is no label. Without a registry (no ML Metadata store in
    `workdir`, or no workdir) there are no labels.
    """
    if workdir is None:
        return {}
    from keel.registry.stages import stage_versions

    return stage_versions(Path(workdir), name)


def choose(root: Path, labelled: dict[str, str]) -> str | None:
    """The version to serve: the `production` label's when it exists under `root`, else the newest."""
    available = versions(root)
    production = labelled.get("production")
    if production is not None:
        if production in available:
            return production
        log.warning(
            "the registry's production version %s of %s is not in %s; serving the newest", production, root.name, root
        )
    return available[-1] if available else None


def chosen_version(workdir: Path, name: str, root: Path) -> str | None:
    """The version to serve: the production one when the registry marks one that exists, else the newest."""
    return choose(root, labels(workdir, name))


def fingerprint(path: Path) -> tuple:
    """Sizes and mtimes of every file under `path`: equal on two looks means the copy has finished."""
    return tuple(
        sorted(
            (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()
        )
    )


@dataclasses.dataclass
class LoadedVersion:
    """One loaded SavedModel version and what the REST API reports about it."""

    name: str
    version: str
    path: Path
    model: object
    signature_inputs: dict[str, dict[str, tf.TensorSpec]]
    signature_defs: dict

    @property
    def default_signature(self) -> str:
        # Named raw features are what REST clients send; `serving_default` takes serialized tf.Examples.
        return "serving_raw" if "serving_raw" in self.signature_inputs else "serving_default"

    def predict(self, signature_name: str, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs one signature on typed columns; returns its outputs as numpy arrays."""
        function = self.model.signatures[signature_name]
        outputs = function(**{name: tf.constant(values) for name, values in columns.items()})
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def load_version(name: str, root: Path, version: str) -> LoadedVersion:
    """Loads version `version` of model `name` and runs it once, so its first request is not slow."""
    from tensorflow.python.saved_model import loader_impl

    path = root / version
    model = tf.saved_model.load(str(path))
    inputs = {key: dict(fn.structured_input_signature[1]) for key, fn in model.signatures.items()}
    saved = loader_impl.parse_saved_model(str(path))
    defs = {
        key: json_format.MessageToDict(sig, preserving_proto_field_name=True)
        for key, sig in saved.meta_graphs[0].signature_def.items()
        if not key.startswith("__")
    }
    loaded = LoadedVersion(name, version, path, model, inputs, defs)
    if "serving_raw" in inputs:  # all-missing raw features are valid input; an empty tf.Example may not be
        loaded.predict("serving_raw", {n: _warmup_value(s) for n, s in inputs["serving_raw"].items()})
    return loaded


def _warmup_value(spec: tf.TensorSpec) -> np.ndarray:
    if spec.dtype == tf.string:
        return np.array([b""], dtype=object)
    return np.full([1], np.nan if spec.dtype.is_floating else 0, dtype=spec.dtype.as_numpy_dtype)
