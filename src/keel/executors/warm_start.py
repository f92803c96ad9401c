"""Borrowed weights (`[model] warm_start`): their fingerprint, and loading them into a fresh model.

A warm start is a Keras weights file (`.weights.h5`), a Keras model file (`.keras`) or a
SavedModel directory (for example a version keel pushed). It enters the pipeline through a TFX
Importer, so ML Metadata records it as an artifact with its sha256, and the Trainer loads it
before training.
"""

from pathlib import Path

from keel.core.errors import ModelCodeError, SpecError

FILE_SUFFIXES = (".weights.h5", ".keras")


def check_warm_start(path: Path, written: str) -> None:
    """Raises SpecError unless `path` is a weights file, a .keras file or a SavedModel directory."""
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise SpecError(
                f"model.warm_start: {written!r} is a directory without saved_model.pb; "
                "expected a SavedModel directory, a .weights.h5 or a .keras file"
            )
    elif not path.is_file():
        raise SpecError(f"model.warm_start: {written!r} does not exist (looked for {path})")
    elif not path.name.endswith(FILE_SUFFIXES):
        raise SpecError(
            f"model.warm_start: {written!r} is neither a SavedModel directory nor a {' or '.join(FILE_SUFFIXES)} file"
        )


def artifact_path(base_model: str) -> Path:
    """The imported path behind the Trainer's `fn_args.base_model`.

    TFX appends its serving subdirectory (Format-Serving) to a Model artifact's uri; an imported
    file or directory has none, so the uri itself is the warm start.
    """
    path = Path(base_model)
    return path if path.exists() else path.parent


def load_into(model, path: Path) -> int:
    """Sets `model`'s weights from the warm start at `path`; returns the number of variables set.

    Raises ModelCodeError when the borrowed weights do not fit the model build_model returned.
    """
    import keras
    import tensorflow as tf

    try:
        if path.name.endswith(".weights.h5"):
            model.load_weights(str(path))
            return len(model.weights)
        if path.name.endswith(".keras"):
            values = [w.numpy() for w in keras.saving.load_model(str(path), compile=False).weights]
        else:
            loaded = tf.saved_model.load(str(path))
            # keel's SavedModels track the Keras variables in model order; other SavedModels list theirs.
            values = [v.numpy() for v in getattr(loaded, "keras_variables", None) or loaded.variables]
    except (OSError, ValueError, TypeError) as e:
        raise ModelCodeError(f"model.warm_start: cannot load {path}: {e.__class__.__name__}: {e}") from e
    ours = [tuple(w.shape) for w in model.weights]
    theirs = [tuple(v.shape) for v in values]
    if ours != theirs:
        raise ModelCodeError(
            f"model.warm_start: {path} holds {len(theirs)} variables with shapes {theirs}; "
            f"the model build_model returned has {len(ours)} with shapes {ours}"
        )
    for weight, value in zip(model.weights, values, strict=True):
        weight.assign(value)
    return len(values)
