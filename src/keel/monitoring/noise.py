"""What chance alone gives: the skew and drift a sample of n training rows shows against training.

A window of n served rows drawn from the very distribution the model was trained on still shows a
Jensen-Shannon divergence or L-infinity distance above zero, and a large one when n is small (13
eval rows of penguin gave 0.22-0.95). To tell a shift from that noise, keel draws `RESAMPLES`
random samples of n rows from the training split, has TFDV compute each one's statistics and its
skew against the full training statistics, exactly as for the served window, and takes the
(1 - false_alarm_rate) quantile per feature: the noise floor. Drift compares two windows, so its
floor comes from pairs of disjoint samples of the two windows' sizes. Where the floor is above the
spec's threshold, n rows cannot tell a shift of the threshold's size from chance; keel then finds
how many rows could, by sampling at doubling sizes up to the training split's.
"""

import dataclasses
import math

import numpy as np
import pyarrow as pa
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx_bsl.coders import example_coder

RESAMPLES = 100  # per size; the 0.99 quantile of 100 draws is their second largest
SEED = 0  # the same logs and training data give the same floors


@dataclasses.dataclass
class Floors:
    """Noise floors per feature for one window size, and the rows a judgement needs where n is too few."""

    rows: int
    skew: dict[str, float]
    drift: dict[str, float]
    rows_needed: dict[str, int | None]  # only features whose floor is above the threshold; None: more than training has


class TrainingSample:
    """The training split's rows (served features only), from which windows of any size are drawn."""

    def __init__(self, records: list[bytes], served: set[str], statistics: statistics_pb2.DatasetFeatureStatisticsList):
        batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
        keep = [i for i, name in enumerate(batch.schema.names) if name in served]
        self.batch = pa.RecordBatch.from_arrays([batch.column(i) for i in keep], [batch.schema.names[i] for i in keep])
        self.statistics = statistics
        self.rows = self.batch.num_rows
        self._options = tfdv.StatsOptions()

    def _statistics(self, indices: np.ndarray) -> statistics_pb2.DatasetFeatureStatisticsList:
        return stats_impl.generate_statistics_in_memory(self.batch.take(pa.array(indices)), self._options)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(self.rows, size, replace=size > self.rows)

    def skew_values(self, schema: schema_pb2.Schema, size: int, rng: np.random.Generator) -> dict[str, list[float]]:
        """Each feature's skew measurement for RESAMPLES random windows of `size` training rows."""
        found: dict[str, list[float]] = {}
        for _ in range(RESAMPLES):
            sample = self._statistics(self._draw(rng, size))
            skew = tfdv.validate_statistics(self.statistics, schema, environment="TRAINING", serving_statistics=sample)
            for name, value in _measured(skew, "skew_measurements").items():
                found.setdefault(name, []).append(value)
        return found

    def drift_values(
        self, schema: schema_pb2.Schema, size: int, previous_size: int, rng: np.random.Generator
    ) -> dict[str, list[float]]:
        """Each feature's drift measurement between RESAMPLES pairs of disjoint random windows."""
        found: dict[str, list[float]] = {}
        disjoint = size + previous_size <= self.rows
        for _ in range(RESAMPLES):
            if disjoint:
                drawn = rng.permutation(self.rows)
                current, previous = drawn[:size], drawn[size : size + previous_size]
            else:
                current, previous = self._draw(rng, size), self._draw(rng, previous_size)
            drift = tfdv.validate_statistics(
                self._statistics(current),
                schema,
                environment="SERVING",
                previous_statistics=self._statistics(previous),
            )
            for name, value in _measured(drift, "drift_measurements").items():
                found.setdefault(name, []).append(value)
        return found


def _measured(anomalies, field: str) -> dict[str, float]:
    return {".".join(info.path.step): m.value for info in anomalies.drift_skew_info for m in getattr(info, field)}


def quantile(values: list[float], false_alarm_rate: float) -> float:
    """The value chance exceeds with probability `false_alarm_rate` (the higher empirical quantile)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil((1 - false_alarm_rate) * len(ordered)) - 1)]


def floors(
    sample: TrainingSample,
    schema: schema_pb2.Schema,
    rows: int,
    previous_rows: int,
    threshold: float,
    false_alarm_rate: float,
) -> Floors:
    """The noise floors of a window of `rows` rows (and of its drift from one of `previous_rows`, if any).

    For features whose skew floor is above `threshold` the rows needed are found by doubling the
    window until the floor falls below it: the first such size (None if even a window as large as
    the training split does not get there).
    """
    rng = np.random.default_rng(SEED)
    skew = {f: quantile(v, false_alarm_rate) for f, v in sample.skew_values(schema, rows, rng).items()}
    drift = {}
    if previous_rows:
        drift = {
            f: quantile(v, false_alarm_rate) for f, v in sample.drift_values(schema, rows, previous_rows, rng).items()
        }
    waiting = {f for f, floor in skew.items() if floor > threshold}
    needed: dict[str, int | None] = {f: None for f in waiting}
    size = rows
    while waiting and size < sample.rows:
        size = min(size * 2, sample.rows)
        for f, values in sample.skew_values(schema, size, rng).items():
            if f in waiting and quantile(values, false_alarm_rate) <= threshold:
                needed[f] = size
                waiting.discard(f)
    return Floors(rows, skew, drift, needed)
