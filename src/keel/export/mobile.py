"""The mobile signature: the raw columns as a phone app has them in, the model's answer out.

A phone app has raw values, not tf.Example protos, so the exported model takes them as:
- `features`, float32 [batch, columns]: the numeric columns and the integer-valued categorical
  ones, in signature.json's column order; a missing value is NaN.
- one string [batch] input per text-valued categorical column, named after it; missing is "".
  (One [batch, columns] string tensor would do, but TF 2.16's int8 calibrator crashes on string
  tensors of more than one element per example.)
- one uint8 [batch, height, width, channels] input per picture feature, named after it: decoded
  pixels at the transform's size, as a phone's camera pipeline gives them.
It returns what `serving_raw` returns for the task: class `probabilities` [batch, classes]
(classification) or `predictions` [batch] in the label's units (regression).

Numbers go through the SavedModel's own TFT graph. Categorical features cannot: TFT vocabularies
are lookup tables initialised from files, which LiteRT converts but cannot initialise at run time,
and their out-of-vocabulary path (StringToHashBucketFast) has no LiteRT kernel. So a model keel
trained with its default transform carries `serving_encoded` (the same model with categorical
features as vocabulary indices; keel.executors.signatures), and the mobile graph puts each
vocabulary in front of it as a constant: a string->int64 StaticHashTable for text (LiteRT's builtin
HASHTABLE kernels) and an equality match for integers. A value outside the vocabulary, missing
included (TFT leaves "" out of vocabularies), gets the vocabulary's size, the index TFT gives it.
Models without `serving_encoded` (a custom preprocessing_fn) export when their raw features are all
numeric; categorical ones are refused by name.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keel.core.errors import ExportError
from keel.data import pictures
from keel.data.features import LABEL_VOCABULARY
from keel.executors.signatures import ENCODED_SIGNATURE, OUTPUT_PREDICTIONS, OUTPUT_PROBABILITIES, RAW_SIGNATURE
from keel.export import examples as example_rows
from keel.export import snippets
from keel.export.measures import measure_of

MOBILE_SIGNATURE = "serving_mobile"
NUMBERS_INPUT = "features"
FLOAT32_EXACT = 2**24  # integers up to this magnitude survive float32 exactly


@dataclasses.dataclass(frozen=True)
class MobileSignature:
    """What the mobile model takes and returns, as written to signature.json.

    columns: the `features` input's columns; text_columns: the text columns, one input each.
    vocabularies: each categorical column's vocabulary in index order (the SavedModel's assets).
    """

    columns: list[str]
    raw_dtypes: dict[str, str]
    label_vocabulary: list[str]  # empty for regression
    task: str = "classification"
    label: str | None = None  # the label's name; signature.json names it for regression
    text_columns: list[str] = dataclasses.field(default_factory=list)
    vocabularies: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    images: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # name -> [height, width, channels]

    @property
    def output(self) -> str:
        return measure_of(self.task).output

    @property
    def input_names(self) -> list[str]:
        """The mobile signature's inputs, in signature.json order."""
        return [NUMBERS_INPUT] * bool(self.columns) + self.text_columns + list(self.images)

    def _inputs_json(self) -> list[dict]:
        inputs = []
        if self.columns:
            integer = [c for c in self.columns if c in self.vocabularies]
            note = "one row per example; raw values in column order, as in the training data; missing: NaN"
            if integer:
                note += f"; {', '.join(integer)} are categories given as their integer values"
            inputs.append(
                {
                    "name": NUMBERS_INPUT,
                    "dtype": "float32",
                    "shape": [-1, len(self.columns)],
                    "columns": self.columns,
                    "note": note,
                }
            )
        for name in self.text_columns:
            inputs.append(
                {
                    "name": name,
                    "dtype": "string",
                    "shape": [-1],
                    "columns": [name],
                    "note": f'the raw {name} of each example (UTF-8 text); missing: ""; '
                    "a value not seen in training is accepted and encoded as unseen",
                }
            )
        for name, (height, width, channels) in self.images.items():
            inputs.append(
                {
                    "name": name,
                    "dtype": "uint8",
                    "shape": [-1, height, width, channels],
                    "columns": [name],
                    "note": f"decoded pixels, {height}x{width} with {channels} channel(s), row by row (0-255); "
                    "resize the camera frame to this size first",
                }
            )
        return inputs

    def to_json(self) -> dict:
        inputs = self._inputs_json()
        usage = {
            "kotlin": snippets.kotlin(self, MOBILE_SIGNATURE, NUMBERS_INPUT),
            "swift": snippets.swift(self, MOBILE_SIGNATURE, NUMBERS_INPUT),
        }
        if self.task == "regression":
            label = self.label or "the label"
            output = {
                "name": OUTPUT_PREDICTIONS,
                "dtype": "float32",
                "shape": [-1],
                "label": self.label,
                "note": f"the predicted {label}, one per row, in the label's units (as in the training data)",
            }
            return {
                "signature_key": MOBILE_SIGNATURE,
                "inputs": inputs,
                "outputs": [output],
                "label": self.label,
                "usage": usage,
            }
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
            "usage": usage,
        }


def _label_vocabulary(saved_model_dir: Path) -> list[str]:
    path = saved_model_dir / "assets" / LABEL_VOCABULARY
    if not path.is_file():
        raise ExportError(
            f"{saved_model_dir}: no label vocabulary (assets/{LABEL_VOCABULARY}); "
            "expected a SavedModel written by keel's Trainer"
        )
    return path.read_text(encoding="utf-8").splitlines()


def read_vocabulary(saved_model_dir: Path, name: str) -> list[str]:
    """The vocabulary TFT wrote for feature `name` (assets/NAME), one entry per line, in index order."""
    path = saved_model_dir / "assets" / name
    if not path.is_file():
        raise ExportError(f"{saved_model_dir}: categorical feature {name!r} has no vocabulary (assets/{name})")
    content = path.read_bytes()
    lines = content.split(b"\n")
    if content.endswith(b"\n"):
        lines.pop()
    return [line.decode("utf-8") for line in lines]


def _integer_keys(name: str, vocabulary: list[str]) -> list[int]:
    try:
        keys = [int(v) for v in vocabulary]
    except ValueError:
        raise ExportError(
            f"categorical feature {name!r}: its vocabulary holds values that are not integers; "
            "the mobile model takes a number column's categories as integers"
        ) from None
    too_big = [k for k in keys if abs(k) > FLOAT32_EXACT]
    if too_big:
        raise ExportError(
            f"categorical feature {name!r} has values beyond 2^24 (for example {too_big[0]}), "
            "which the mobile model's float32 input cannot hold exactly"
        )
    return keys


def _refuse_categorical(raw_inputs: dict, directory: Path) -> None:
    text = sorted(n for n, s in raw_inputs.items() if s.dtype == tf.string)
    assets = {p.name for p in (directory / "assets").glob("*")}
    looked_up = sorted(n for n, s in raw_inputs.items() if s.dtype != tf.string and n in assets)
    if text or looked_up:
        raise ExportError(
            f"mobile export of categorical features {', '.join(map(repr, text + looked_up))} needs the SavedModel's "
            f"{ENCODED_SIGNATURE!r} signature, which keel's Trainer writes with keel's default transform only "
            "(this model has a custom preprocessing_fn or was trained by an older keel); TFT's own vocabulary "
            "lookups are tables initialised from files, which LiteRT cannot initialise at run time"
        )


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
    raw_inputs = loaded.signatures[RAW_SIGNATURE].structured_input_signature[1]
    vocabularies, images = {}, {}
    if ENCODED_SIGNATURE in loaded.signatures:
        encoded = loaded.signatures[ENCODED_SIGNATURE].structured_input_signature[1]
        images = {n: s.shape.as_list()[1:] for n, s in sorted(encoded.items()) if s.dtype == tf.uint8}
        categorical = sorted(n for n, s in encoded.items() if s.dtype == tf.int64)
        vocabularies = {n: read_vocabulary(directory, n) for n in categorical}
        floats = [n for n in categorical if raw_inputs[n].dtype == tf.float32]
        if floats:
            raise ExportError(
                f"categorical features {', '.join(map(repr, floats))} hold floating-point values; the mobile model "
                "takes categories as text or integers (list them under features.numeric, or drop them)"
            )
        for n in categorical:
            if raw_inputs[n].dtype != tf.string:
                _integer_keys(n, vocabularies[n])
    else:
        _refuse_categorical(raw_inputs, directory)
    dtypes = {n: raw_inputs[n].dtype.name for n in sorted(raw_inputs)}
    columns = sorted(n for n, s in raw_inputs.items() if s.dtype != tf.string)
    text = sorted(n for n, s in raw_inputs.items() if s.dtype == tf.string and n not in images)
    if NUMBERS_INPUT in [*text, *images]:
        raise ExportError(
            f"text feature {NUMBERS_INPUT!r}: the mobile signature's number input has that name; rename the column"
        )
    common = {"text_columns": text, "vocabularies": vocabularies, "images": images}
    if OUTPUT_PREDICTIONS in loaded.signatures[RAW_SIGNATURE].structured_outputs:
        return loaded, MobileSignature(columns, dtypes, [], task="regression", **common)
    return loaded, MobileSignature(columns, dtypes, _label_vocabulary(directory), **common)


def mobile_inputs(signature: MobileSignature, records: list[bytes]) -> dict[str, np.ndarray]:
    """The mobile signature's inputs for `records` (tf.Example): one row per record."""
    inputs = {}
    if signature.columns:
        inputs[NUMBERS_INPUT] = example_rows.dense_matrix(records, signature.columns)
    text = example_rows.text_matrix(records, [*signature.text_columns, *signature.images])
    inputs.update({name: text[:, j] for j, name in enumerate(signature.text_columns)})
    for j, (name, (height, width, channels)) in enumerate(signature.images.items(), len(signature.text_columns)):
        pixels = [pictures.pixels_of(content, (height, width), channels) for content in text[:, j]]
        inputs[name] = np.stack(pixels) if pixels else np.zeros((0, height, width, channels), np.uint8)
    return inputs


def raw_tensors(signature: MobileSignature, records: list[bytes]) -> dict[str, tf.Tensor]:
    """The same records as `serving_raw`'s inputs: one tensor per raw column (pictures encoded)."""
    dtypes = {n: tf.as_dtype(d) for n, d in signature.raw_dtypes.items()}
    numbers = example_rows.dense_matrix(records, signature.columns)
    tensors = {n: tf.constant(numbers[:, j], dtype=dtypes[n]) for j, n in enumerate(signature.columns)}
    text = example_rows.text_matrix(records, [*signature.text_columns, *signature.images])
    tensors.update({n: tf.constant(text[:, j]) for j, n in enumerate([*signature.text_columns, *signature.images])})
    return tensors


class MobileModule(tf.Module):
    """Holds the loaded SavedModel, the vocabularies as constants, and `serving_mobile`."""

    def __init__(self, loaded, signature: MobileSignature):
        super().__init__()
        self.loaded = loaded
        dtypes = {n: tf.as_dtype(d) for n, d in signature.raw_dtypes.items()}
        vocabularies = signature.vocabularies
        self.tables = {
            n: tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocabularies[n], tf.string), tf.range(len(vocabularies[n]), dtype=tf.int64)
                ),
                default_value=len(vocabularies[n]),
            )
            for n in signature.text_columns
        }
        integer_keys = {
            n: tf.constant(_integer_keys(n, vocabularies[n]), tf.float32)
            for n in signature.columns
            if n in vocabularies
        }
        model = loaded.signatures[ENCODED_SIGNATURE if vocabularies or signature.images else RAW_SIGNATURE]
        output = signature.output

        def integer_index(name, x):
            keys = integer_keys[name]
            matches = tf.equal(x[:, tf.newaxis], keys[tf.newaxis, :])
            found = tf.reduce_any(matches, axis=1)
            position = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int64)
            return tf.where(found, position, tf.constant(len(vocabularies[name]), tf.int64))

        def serve(**inputs):
            values = {}
            for j, name in enumerate(signature.columns):
                x = inputs[NUMBERS_INPUT][:, j]
                values[name] = integer_index(name, x) if name in integer_keys else tf.cast(x, dtypes[name])
            for name in signature.text_columns:
                values[name] = self.tables[name].lookup(inputs[name])
            values.update({name: inputs[name] for name in signature.images})
            return {output: model(**values)[output]}

        specs = {name: tf.TensorSpec([None], tf.string, name=name) for name in signature.text_columns}
        specs.update(
            {name: tf.TensorSpec([None, *shape], tf.uint8, name=name) for name, shape in signature.images.items()}
        )
        if signature.columns:
            specs[NUMBERS_INPUT] = tf.TensorSpec([None, len(signature.columns)], tf.float32, name=NUMBERS_INPUT)
        self.serve = tf.function(serve).get_concrete_function(**specs)


def save_mobile_model(loaded, signature: MobileSignature, directory: Path) -> Path:
    """Writes a SavedModel whose only signature is `serving_mobile`; returns its directory."""
    module = MobileModule(loaded, signature)
    tf.saved_model.save(module, str(directory), signatures={MOBILE_SIGNATURE: module.serve})
    return directory
