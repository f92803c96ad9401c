"""Rows for export: tf.Example records of an ExampleGen split, as the dense inputs a phone has."""

import math
import os

import numpy as np
import tensorflow as tf

from keel.core.errors import ExportError


def read_split(examples_uri: str, split: str, limit: int | None = None) -> list[bytes]:
    """Serialized tf.Example records of `split` (Split-NAME/*.gz under an Examples artifact)."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise ExportError(
            f"{examples_uri}: no Split-{split} examples; expected an ExampleGen output with train and eval splits"
        )
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if limit is not None:
        dataset = dataset.take(limit)
    return [r.numpy() for r in dataset]


def _value(example: tf.train.Example, name: str):
    feature = example.features.feature.get(name)
    kind = feature.WhichOneof("kind") if feature is not None else None
    values = getattr(feature, kind).value if kind else []
    return values[0] if values else None


def dense_matrix(records: list[bytes], columns: list[str]) -> np.ndarray:
    """A float32 [rows, len(columns)] matrix of the records' values; a missing value is NaN."""
    matrix = np.full((len(records), len(columns)), math.nan, dtype=np.float32)
    for i, record in enumerate(records):
        example = tf.train.Example.FromString(record)
        for j, name in enumerate(columns):
            value = _value(example, name)
            if value is not None:
                matrix[i, j] = float(value)
    return matrix


def text_matrix(records: list[bytes], columns: list[str]) -> np.ndarray:
    """A bytes [rows, len(columns)] matrix (numpy object) of the records' text values; missing is b""."""
    matrix = np.full((len(records), len(columns)), b"", dtype=object)
    for i, record in enumerate(records):
        example = tf.train.Example.FromString(record)
        for j, name in enumerate(columns):
            value = _value(example, name)
            if value is not None:
                matrix[i, j] = value if isinstance(value, bytes) else str(value).encode()
    return matrix


def rows_of(inputs: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows start..stop of every input of a mobile model (each array has one row per example)."""
    return {name: values[start:stop] for name, values in inputs.items()}


def row_count(inputs: dict[str, np.ndarray]) -> int:
    """How many examples the inputs hold."""
    return len(next(iter(inputs.values())))


def label_indices(records: list[bytes], label: str, vocabulary: list[str]) -> np.ndarray:
    """Each record's label as its class index in `vocabulary` (-1 when absent or unseen in training)."""
    index = {v: i for i, v in enumerate(vocabulary)}
    out = np.full(len(records), -1, dtype=np.int64)
    for i, record in enumerate(records):
        value = _value(tf.train.Example.FromString(record), label)
        if value is not None:
            text = value.decode() if isinstance(value, bytes) else str(value)
            out[i] = index.get(text, -1)
    return out


def label_values(records: list[bytes], label: str) -> np.ndarray:
    """Each record's numeric label as float64 (NaN when absent): a regression's eval labels."""
    out = np.full(len(records), math.nan, dtype=np.float64)
    for i, record in enumerate(records):
        value = _value(tf.train.Example.FromString(record), label)
        if value is not None:
            out[i] = float(value)
    return out
