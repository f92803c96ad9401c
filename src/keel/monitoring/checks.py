"""TFDV over serving rows: statistics, then schema, skew and drift anomalies as alerts.

The model's schema is given two environments, TRAINING and SERVING; columns the serving signature
does not take (the label, unused columns) are left out of SERVING. Each served feature gets a skew
comparator (training vs serving) and a drift comparator (previous vs current window): Jensen-Shannon
divergence for numbers, L-infinity distance for strings. TFDV computes every statistic and every
distance; keel only sets the thresholds and reads the anomalies.
"""

import dataclasses

import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx_bsl.coders import example_coder

_REASONS = anomalies_pb2.AnomalyInfo.Type


@dataclasses.dataclass
class Alert:
    feature: str
    kind: str  # schema | skew | drift | accuracy | error
    reason: str  # TFDV's anomaly type, e.g. ENUM_TYPE_UNEXPECTED_STRING_VALUES
    description: str
    tfdv_description: str = ""  # TFDV's own sentence, where keel's description replaces it


@dataclasses.dataclass
class Thresholds:
    skew: float
    drift: float
    accuracy_drop: float
    error_increase: float = 0.1
    false_alarm_rate: float = 0.01


def statistics(examples: list[bytes]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of serialized tf.Examples, decoded the way TFDV's own pipelines decode them."""
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(examples)
    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())


def monitoring_schema(schema: schema_pb2.Schema, served: set[str], thresholds: Thresholds) -> schema_pb2.Schema:
    """A copy of `schema` with TRAINING/SERVING environments and skew and drift comparators set."""
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    del schema.default_environment[:]
    schema.default_environment.extend(["TRAINING", "SERVING"])
    for feature in schema.feature:
        if feature.name not in served:
            feature.not_in_environment.append("SERVING")
        elif feature.type == schema_pb2.BYTES:
            feature.skew_comparator.infinity_norm.threshold = thresholds.skew
            feature.drift_comparator.infinity_norm.threshold = thresholds.drift
        else:
            feature.skew_comparator.jensen_shannon_divergence.threshold = thresholds.skew
            feature.drift_comparator.jensen_shannon_divergence.threshold = thresholds.drift
    return schema


def _is_comparator(reason) -> bool:
    return _REASONS.Name(reason.type).startswith("COMPARATOR_")


def _alerts(anomalies: anomalies_pb2.Anomalies, kind_of) -> list[Alert]:
    found = []
    for key, info in sorted(anomalies.anomaly_info.items()):
        feature = ".".join(info.path.step) or key
        for reason in info.reason:
            kind = kind_of(reason)
            if kind:
                found.append(Alert(feature, kind, _REASONS.Name(reason.type), reason.description))
    return found


def _measurements(anomalies: anomalies_pb2.Anomalies, field: str) -> dict[str, dict]:
    found = {}
    for info in anomalies.drift_skew_info:
        for m in getattr(info, field):
            found[".".join(info.path.step)] = {
                "measure": anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type),
                "value": m.value,
                "threshold": m.threshold,
            }
    return found


def check(train: statistics_pb2.DatasetFeatureStatisticsList, serving, previous, schema: schema_pb2.Schema):
    """Alerts, and skew and drift measurements per feature, for serving statistics.

    `previous` (the previous window's statistics) may be None: then there is no drift check.
    """
    current = tfdv.validate_statistics(serving, schema, environment="SERVING", previous_statistics=previous)
    alerts = _alerts(current, lambda r: "drift" if _is_comparator(r) else "schema")
    # Validating the training statistics again only to read the skew comparators: their schema
    # anomalies were checked by ExampleValidator when the model was trained.
    skew = tfdv.validate_statistics(train, schema, environment="TRAINING", serving_statistics=serving)
    alerts += _alerts(skew, lambda r: "skew" if _is_comparator(r) else None)
    return alerts, _measurements(skew, "skew_measurements"), _measurements(current, "drift_measurements")


_MEASURES = {"JENSEN_SHANNON_DIVERGENCE": "Jensen-Shannon divergence", "L_INFTY": "L-infinity distance"}


def calibrated(
    alerts: list[Alert],
    measurements: dict[str, dict],
    kind: str,
    floors: dict[str, float],
    rows: int,
    chance: str,
    false_alarm_rate: float,
    rows_needed: dict[str, int | None] | None = None,
    training_rows: int = 0,
):
    """The `kind` (skew or drift) alerts that exceed their noise floor too, and each measurement's verdict.

    Adds `noise_floor`, `rows` and `verdict` to each of `measurements` (in place); returns the
    alerts of other kinds unchanged, those of `kind` only where the value is above both the
    threshold and the floor, with keel's description (n, value, threshold, floor). `chance` says
    what the floors were measured on ("random windows of 13 training rows").
    """
    for feature, m in measurements.items():
        floor = floors.get(feature, 0.0)
        m["noise_floor"], m["rows"] = floor, rows
        if m["value"] > m["threshold"] and m["value"] > floor:
            m["verdict"] = "shifted"
        elif m["value"] > m["threshold"]:
            m["verdict"] = f"within chance: {chance} reach {floor:.3f}"
        elif floor > m["threshold"]:
            if rows_needed is None:  # not searched (drift): say what chance gives at this size
                more = f"{chance} reach {floor:.3f}"
            elif rows_needed.get(feature):
                more = f"need about {rows_needed[feature]}"
            else:
                more = f"more than the {training_rows} training rows"
            m["verdict"] = f"too few rows to judge (n={rows}, {more})"
        else:
            m["verdict"] = "no shift"
    kept = []
    for alert in alerts:
        m = measurements.get(alert.feature)
        if alert.kind != kind or m is None:
            kept.append(alert)
        elif m["verdict"] == "shifted":
            measure = _MEASURES.get(m["measure"], m["measure"])
            kept.append(
                dataclasses.replace(
                    alert,
                    description=f"{measure} {m['value']:.3f} over {rows} rows: above the threshold {m['threshold']:g} "
                    f"and the noise floor {m['noise_floor']:.3f} (what {chance} exceed "
                    f"{false_alarm_rate:g} of the time)",
                    tfdv_description=alert.description,
                )
            )
    return kept
