"""DataGate: stops the pipeline before Transform and training when the data is not fit to train on.

TFX's ExampleValidator records anomalies but lets the pipeline go on. DataGate reads its output
and the schema, and fails with every problem in plain words when
- ExampleValidator found anomalies in any split, or
- a column the spec declares numeric holds text (CSV type inference then makes it a string
  column, which no schema check would flag), or NaN or infinite values (which would turn the
  Transform's means and variances, and then every prediction, into NaN), or
- the label is not in the data, or takes a class in the eval split that training never sees, or
- the data is too thin to train on (keel.pipeline.components.degenerate: an empty split, a single
  class, a missing label, an empty feature, a type that differs between the splits), or
- a column the model reads changed type, or is gone, since the span the blessed model was trained on
  (keel.pipeline.components.schema_drift; a new column is a warning, or a problem with
  `data.new_columns = "error"`). Integers where the blessed model had floats are not a problem: keel's
  ExampleGen wrote them as floats (keel.executors.example_gen), which is said as a warning.
Warnings (a constant feature, a regression label with gaps) are printed and the run goes on.
Transform depends on DataGate, so nothing downstream runs on bad data.
"""

import dataclasses
import math
import os
from pathlib import Path

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from keel.core.errors import DataError
from keel.executors.example_gen import converted_columns
from keel.mlmd.training_data import blessed_schema
from keel.pipeline.components.degenerate import degenerate
from keel.pipeline.components.schema_drift import drift
from keel.pipeline.config import GateConfig, decode

MAX_LISTED = 12


def _schema(artifact) -> schema_pb2.Schema:
    return io_utils.SchemaReader().read(os.path.join(artifact.uri, "schema.pbtxt"))


def _per_split(artifact, file_name: str, proto_class) -> dict:
    """Split name -> the binary proto `file_name` in that split's directory of `artifact`."""
    found = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), file_name)
        found[split] = proto_class.FromString(io_utils.read_bytes_file(path))
    return found


def _non_finite(stats: dict[str, statistics_pb2.DatasetFeatureStatistics], numeric: list[str]) -> list[str]:
    """A line per declared-numeric column whose statistics show NaN or infinite values."""
    found = []
    for name in numeric:
        nan, infinite = 0, set()
        for split_stats in stats.values():
            for feature in split_stats.features:
                if feature.path.step == [name] and feature.HasField("num_stats"):
                    numbers = feature.num_stats
                    nan += max((h.num_nan for h in numbers.histograms), default=0)  # each histogram counts all
                    infinite |= {str(v) for v in (numbers.min, numbers.max) if math.isinf(v)}
        if nan:
            found.append(
                f"column {name!r} holds NaN in {int(nan)} row(s): leave a missing value empty instead (keel imputes it)"
            )
        if infinite:
            found.append(
                f"column {name!r} holds infinite values ({', '.join(sorted(infinite))}): fix or drop those rows"
            )
    return found


def _unseen_labels(stats: dict[str, statistics_pb2.DatasetFeatureStatistics], label: str) -> list[str]:
    """A line per split whose (text) label takes values the train split never shows.

    The model cannot predict a class it was not trained on: such rows could only lower the metrics,
    so this is a data problem to fix before training, not something to discover in the metrics.
    """

    def values(split_stats) -> dict[str, float]:
        for feature in split_stats.features:
            if feature.path.step == [label] and feature.HasField("string_stats"):
                return {b.label: b.sample_count for b in feature.string_stats.rank_histogram.buckets}
        return {}

    known = values(stats["train"]) if "train" in stats else {}
    if not known:  # no train split, or a label TFDV keeps no class list for (integers)
        return []
    found = []
    for split, split_stats in sorted(stats.items()):
        unseen = {v: n for v, n in values(split_stats).items() if v not in known}
        if unseen:
            shown = ", ".join(f"{v!r} ({int(n)} row(s))" for v, n in sorted(unseen.items())[:5])
            found.append(
                f"split {split}: the label {label!r} has class(es) the train split never shows: {shown}; "
                "the model cannot predict them: fix those rows or add examples of them to the data"
            )
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


def problems(examples, statistics, schema, anomalies, config: GateConfig) -> tuple[list[str], list[str]]:
    """Every reason the data is unfit, and every warning, one plain-words line each (empty when it is fine)."""
    found = []
    schema_proto = _schema(schema)
    types = {f.name: f.type for f in schema_proto.feature}
    label = config.label
    if label not in types:
        found.append(f"label {label!r} is not in the data (columns: {', '.join(sorted(types))})")
    stats = {
        split: lists.datasets[0]
        for split, lists in _per_split(
            statistics, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList
        ).items()
    }
    thin, warnings = degenerate(stats, types, config)
    if thin:  # the checks below assume rows, classes, values and one type per column
        return found + thin, warnings
    for name in config.numeric:
        if types.get(name) == schema_pb2.BYTES:
            samples, rows = _non_numeric_values(examples, name)
            shown = ", ".join(repr(s) for s in samples)
            found.append(
                f"column {name!r} is declared numeric (features.numeric) but holds text in {rows} row(s), "
                f"e.g. {shown}: fix those rows or list it under features.categorical"
            )
    blessed = blessed_schema(Path(config.workdir)) if config.workdir else None
    if blessed:
        version, schema_file = blessed
        # A declared-numeric column that holds text is reported above, with the rows: not a second time.
        numbers = dataclasses.replace(
            config, numeric=tuple(n for n in config.numeric if types.get(n) != schema_pb2.BYTES)
        )
        drifted, new_columns = drift(schema_proto, io_utils.SchemaReader().read(schema_file), numbers, version)
        found += drifted
        (found if config.new_columns == "error" else warnings).extend(new_columns)
        warnings += [
            f"column {name!r} holds integers in this span: written as floats, the type in the data the blessed "
            f"model (version {version}) was trained on, so it evaluates and serves as before"
            for name in converted_columns(examples)
        ]
    found += _non_finite(stats, [n for n in config.numeric if types.get(n) != schema_pb2.BYTES])
    found += _unseen_labels(stats, label)
    for split, result in sorted(_per_split(anomalies, "SchemaDiff.pb", anomalies_pb2.Anomalies).items()):
        for feature, info in sorted(result.anomaly_info.items()):
            found.append(f"split {split}: column {feature!r}: {info.description or info.short_description}")
        if result.HasField("dataset_anomaly_info"):
            info = result.dataset_anomaly_info
            found.append(f"split {split}: {info.description or info.short_description}")
    return found, warnings


@tfx.dsl.components.component
def DataGate(
    examples: InputArtifact[standard_artifacts.Examples],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    config: Parameter[str],
) -> None:
    """Prints the warnings, then raises DataError listing every problem; returns quietly when there is none."""
    found, warnings = problems(examples, statistics, schema, anomalies, decode(GateConfig, config))
    for line in warnings:
        print(f"  warning: {line}", flush=True)
    if found:
        shown = found[:MAX_LISTED]
        more = f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
        raise DataError(f"data validation failed, training not started: {'; '.join(shown)}{more}")
