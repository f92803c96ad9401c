"""DataGate: stops the pipeline before Transform and training when the data is not fit to train on.

TFX's ExampleValidator records anomalies but lets the pipeline go on. DataGate reads its output
and the schema, and fails with every problem in plain words when
- ExampleValidator found anomalies in any split, or
- a column the spec declares numeric holds text (CSV type inference then makes it a string
  column, which no schema check would flag), or
- the label is not in the data.
Transform depends on DataGate, so nothing downstream runs on bad data.
"""

import json
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from keel.errors import DataError

MAX_LISTED = 12


def _schema(artifact) -> schema_pb2.Schema:
    return io_utils.SchemaReader().read(os.path.join(artifact.uri, "schema.pbtxt"))


def _anomalies(artifact) -> dict:
    found = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), "SchemaDiff.pb")
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        found[split] = anomalies
    return found


def _non_numeric_values(examples, feature: str, limit: int = 3, scan: int = 1_000_000) -> tuple[list[str], int]:
    """Up to `limit` distinct text values of `feature` that are not numbers, and how many rows hold one.

    Statistics only keep the most frequent values, and a stray word in a numeric column is rare, so
    the rows themselves are scanned (at most `scan` of them, on both splits).
    """
    import tensorflow as tf

    samples, rows = [], 0
    files = []
    for split in artifact_utils.decode_split_names(examples.split_names):
        files += tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(scan):
        values = tf.train.Example.FromString(record.numpy()).features.feature[feature].bytes_list.value
        bad = [v.decode("utf-8", "replace") for v in values if not _is_number(v.decode("utf-8", "replace"))]
        if bad:
            rows += 1
            samples += [b for b in bad if b not in samples][: limit - len(samples)]
    return samples, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def problems(examples, schema, anomalies, config: dict) -> list[str]:
    """Every reason the data is unfit, one plain-words line each (empty when it is fine)."""
    found = []
    schema_proto = _schema(schema)
    types = {f.name: f.type for f in schema_proto.feature}
    label = config["label"]
    if label not in types:
        found.append(f"label {label!r} is not in the data (columns: {', '.join(sorted(types))})")
    for name in config["numeric"]:
        if types.get(name) == schema_pb2.BYTES:
            samples, rows = _non_numeric_values(examples, name)
            shown = ", ".join(repr(s) for s in samples)
            found.append(f"column {name!r} is declared numeric (features.numeric) but holds text in {rows} row(s), "
                         f"e.g. {shown}: fix those rows or list it under features.categorical")
    for split, result in sorted(_anomalies(anomalies).items()):
        for feature, info in sorted(result.anomaly_info.items()):
            found.append(f"split {split}: column {feature!r}: {info.description or info.short_description}")
        if result.HasField("dataset_anomaly_info"):
            info = result.dataset_anomaly_info
            found.append(f"split {split}: {info.description or info.short_description}")
    return found


@tfx.dsl.components.component
def DataGate(
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    config: Parameter[str],
) -> None:
    """Raises DataError listing every problem; returns quietly when the data is fit to train on."""
    found = problems(examples, schema, anomalies, json.loads(config))
    if found:
        shown = found[:MAX_LISTED]
        more = f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        raise DataError(f"data validation failed, training not started: {'; '.join(shown)}{more}")
