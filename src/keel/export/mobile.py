"""The mobile signature: one float32 matrix of raw numeric features in, the model's answer out.

A phone app has raw values, not tf.Example protos, so the exported model takes the raw columns as
one `features` tensor [batch, columns] (column order in signature.json) and runs the SavedModel's
`serving_raw` signature, transform graph included, on it. It returns what `serving_raw` returns for
the task: class `probabilities` [batch, classes] (classification) or `predictions` [batch] in the
label's units (regression). Supported set: numeric raw features (keel's z-score, or any
preprocessing_fn of numeric ops LiteRT has). Text features and vocabulary-encoded features are
refused by name: TFT vocabularies are lookup tables initialised from files, which convert but
cannot be initialised by LiteRT at run time.
"""

import dataclasses
import os
from pathlib import Path

import tensorflow as tf

from keel.core.errors import ExportError
from keel.data.features import LABEL_VOCABULARY
from keel.executors.signatures import OUTPUT_PREDICTIONS, OUTPUT_PROBABILITIES
from keel.export.measures import measure_of

RAW_SIGNATURE = "serving_raw"
MOBILE_SIGNATURE = "serving_mobile"
MOBILE_INPUT = "features"


@dataclasses.dataclass(frozen=True)
class MobileSignature:
    """What the mobile model takes and returns, as written to signature.json."""

    columns: list[str]
    raw_dtypes: dict[str, str]
    label_vocabulary: list[str]  # empty for regression
    task: str = "classification"
    label: str | None = None  # the label's name; signature.json names it for regression

    @property
    def output(self) -> str:
        return measure_of(self.task).output

    def to_json(self) -> dict:
        inputs = [
            {
                "name": MOBILE_INPUT,
                "dtype": "float32",
                "shape": [-1, len(self.columns)],
                "columns": self.columns,
                "note": "one row per example; raw values in column order, as in the training data",
            }
        ]
        if self.task == "regression":
            label = self.label or "the label"
            output = {
                "name": OUTPUT_PREDICTIONS,
                "dtype": "float32",
                "shape": [-1],
                "label": self.label,
                "note": f"the predicted {label}, one per row, in the label's units (as in the training data)",
            }
            return {"signature_key": MOBILE_SIGNATURE, "inputs": inputs, "outputs": [output], "label": self.label}
        output = {
            "name": OUTPUT_PROBABILITIES,
            "dtype": "float32",
            "shape": [-1, len(self.label_vocabulary)],
            "note": "probability of each class, in label_vocabulary order",
        }
        return {
            "signature_key": MOBILE_SIGNATURE,
            "inputs": inputs,
            "outputs": [output],
            "label_vocabulary": self.label_vocabulary,
        }


def _label_vocabulary(saved_model_dir: Path) -> list[str]:
    path = saved_model_dir / "assets" / LABEL_VOCABULARY
    if not path.is_file():
        raise ExportError(
            f"{saved_model_dir}: no label vocabulary (assets/{LABEL_VOCABULARY}); "
            "expected a SavedModel written by keel's Trainer"
        )
    return path.read_text(encoding="utf-8").splitlines()


def inspect_saved_model(saved_model_dir: str | os.PathLike):
    """Loads a keel SavedModel; returns it with its MobileSignature, or raises ExportError naming
    the features LiteRT cannot take.

    The task is what `serving_raw` returns: `predictions` (regression) or `probabilities`."""
    directory = Path(saved_model_dir)
    if not (directory / "saved_model.pb").is_file():
        raise ExportError(f"{directory}: not a SavedModel directory (no saved_model.pb)")
    loaded = tf.saved_model.load(str(directory))
    if RAW_SIGNATURE not in loaded.signatures:
        raise ExportError(
            f"{directory}: the SavedModel has no {RAW_SIGNATURE!r} signature; expected one written by keel's Trainer"
        )
    inputs = loaded.signatures[RAW_SIGNATURE].structured_input_signature[1]
    text = sorted(n for n, s in inputs.items() if s.dtype == tf.string)
    assets = {p.name for p in (directory / "assets").glob("*")}
    looked_up = sorted(n for n, s in inputs.items() if s.dtype != tf.string and n in assets)
    problems = []
    if text:
        problems.append(f"text features {', '.join(map(repr, text))} (drop them from [features])")
    if looked_up:
        problems.append(
            f"vocabulary-encoded features {', '.join(map(repr, looked_up))} "
            "(list them under features.numeric, or drop them)"
        )
    if problems:
        raise ExportError(
            f"mobile export supports numeric raw features only; this model has {' and '.join(problems)}: "
            "TFT vocabularies are lookup tables (LookupTableFindV2 on InitializeTableFromTextFileV2) "
            "that LiteRT cannot initialise at run time"
        )
    columns = sorted(inputs)
    dtypes = {n: inputs[n].dtype.name for n in columns}
    if OUTPUT_PREDICTIONS in loaded.signatures[RAW_SIGNATURE].structured_outputs:
        return loaded, MobileSignature(columns, dtypes, [], task="regression")
    return loaded, MobileSignature(columns, dtypes, _label_vocabulary(directory))


class MobileModule(tf.Module):
    """Holds the loaded SavedModel and the `serving_mobile` function over its `serving_raw`."""

    def __init__(self, loaded, signature: MobileSignature):
        super().__init__()
        self.loaded = loaded
        raw = loaded.signatures[RAW_SIGNATURE]
        dtypes = {n: tf.as_dtype(d) for n, d in signature.raw_dtypes.items()}
        columns, output = signature.columns, signature.output

        @tf.function(input_signature=[tf.TensorSpec([None, len(columns)], tf.float32, name=MOBILE_INPUT)])
        def serve(features):
            inputs = {name: tf.cast(features[:, j], dtypes[name]) for j, name in enumerate(columns)}
            return {output: raw(**inputs)[output]}

        self.serve = serve


def save_mobile_model(loaded, signature: MobileSignature, directory: Path) -> Path:
    """Writes a SavedModel whose only signature is `serving_mobile`; returns its directory."""
    module = MobileModule(loaded, signature)
    tf.saved_model.save(module, str(directory), signatures={MOBILE_SIGNATURE: module.serve.get_concrete_function()})
    return directory
