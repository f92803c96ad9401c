"""DataGate: stops the pipeline before Transform and training when the data is not fit to train on.

TFX's ExampleValidator records anomalies but lets the pipeline go on. DataGate reads its output,
the statistics and the schema, and fails with every problem in plain words when
- ExampleValidator found anomalies in any split, or
- a column the spec declares numeric holds text (CSV type inference then makes it a string
  column, which no schema check would flag), or
- the label is not in the data.
Transform depends on DataGate, so nothing downstream runs on bad data.
"""

import json
import os

import tensorflow_data_validation as tfdv
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


def _sample_strings(statistics, feature: str) -> list[str]:
    stats = tfdv.load_stats_binary(os.path.join(artifact_utils.get_split_uri([statistics], "train"),
                                                "FeatureStats.pb"))
    for dataset in stats.datasets:
        for f in dataset.features:
            if f.path.step and f.path.step[-1] == feature:
                values = [v.value for v in f.string_stats.top_values]
                non_numeric = [v for v in values if not _is_number(v)]
                return (non_numeric or values)[:3]
    return []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def problems(statistics, schema, anomalies, config: dict) -> list[str]:
    """Every reason the data is unfit, one plain-words line each (empty when it is fine)."""
    found = []
    schema_proto = _schema(schema)
    types = {f.name: f.type for f in schema_proto.feature}
    label = config["label"]
    if label not in types:
        found.append(f"label {label!r} is not in the data (columns: {', '.join(sorted(types))})")
    for name in config["numeric"]:
        if types.get(name) == schema_pb2.BYTES:
            samples = ", ".join(repr(s) for s in _sample_strings(statistics, name))
            found.append(f"column {name!r} is declared numeric (features.numeric) but holds text, "
                         f"e.g. {samples}: fix those rows or list it under features.categorical")
    for split, result in sorted(_anomalies(anomalies).items()):
        for feature, info in sorted(result.anomaly_info.items()):
            found.append(f"split {split}: column {feature!r}: {info.description or info.short_description}")
        if result.HasField("dataset_anomaly_info"):
            info = result.dataset_anomaly_info
            found.append(f"split {split}: {info.description or info.short_description}")
    return found


@tfx.dsl.components.component
def DataGate(
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    config: Parameter[str],
) -> None:
    """Raises DataError listing every problem; returns quietly when the data is fit to train on."""
    found = problems(statistics, schema, anomalies, json.loads(config))
    if found:
        shown = found[:MAX_LISTED]
        more = f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        raise DataError(f"data validation failed, training not started: {'; '.join(shown)}{more}")
