"""One model version's training side, and the skew and drift of a window of served rows against it.

`Judge` finds the version's schema, training statistics and thresholds through ML Metadata once,
and judges any number of windows: TFDV's statistics of the window, TFDV's skew (training vs the
window) and drift (the previous window vs this one) checks, kept as alerts only above the noise
floor at the window's size (keel.monitoring.noise). `keel monitor` judges one window with it,
`--window` and `--follow` one per window.
"""

import dataclasses

import tensorflow_data_validation as tfdv

from keel.core.spec import MonitorSection
from keel.export.examples import read_split
from keel.mlmd.training_data import training_lineage
from keel.monitoring import checks, noise
from keel.monitoring.checks import Alert, Thresholds

MAX_TRAINING_ROWS = 50_000  # the training rows noise floors are drawn from, at most


def thresholds_of(spec: dict) -> Thresholds:
    """The `[monitor]` section of `spec` as Thresholds."""
    section = MonitorSection.model_validate(spec.get("monitor", {}))
    return Thresholds(
        section.skew_threshold,
        section.drift_threshold,
        section.accuracy_drop,
        section.error_increase,
        section.false_alarm_rate,
    )


@dataclasses.dataclass
class Judged:
    """What one window showed: its statistics, the features served, measurements per feature, alerts."""

    serving: object  # DatasetFeatureStatisticsList
    served: list[str]
    features: dict[str, dict]  # feature -> {"skew": measurement, "drift": measurement}
    alerts: list[Alert]
    training_rows: int


class Judge:
    """Judges windows of served rows of one model version against that version's training data."""

    def __init__(self, workdir, version: str):
        self.version = version
        self.lineage = training_lineage(workdir, version)
        self.schema = tfdv.load_schema_text(str(self.lineage.schema_file))
        self.train = tfdv.load_stats_binary(str(self.lineage.train_statistics_file))
        self.thresholds = thresholds_of(self.lineage.spec)
        self._records = None
        self._samples: dict[frozenset, noise.TrainingSample] = {}
        self._floors: dict[tuple, noise.Floors] = {}

    def _sample(self, served: set[str]) -> noise.TrainingSample:
        key = frozenset(served)
        if key not in self._samples:
            if self._records is None:
                self._records = read_split(self.lineage.examples_uri, "train", MAX_TRAINING_ROWS)
            self._samples[key] = noise.TrainingSample(self._records, served, self.train)
        return self._samples[key]

    def judge(self, rows: list, previous_rows: list) -> Judged:
        """Skew of `rows` (LoggedRows) against training and, if `previous_rows`, their drift from those."""
        thresholds = self.thresholds
        serving = checks.statistics([r.example for r in rows])
        before = checks.statistics([r.example for r in previous_rows]) if previous_rows else None
        served = sorted(".".join(f.path.step) for f in serving.datasets[0].features)
        judged_schema = checks.monitoring_schema(self.schema, set(served), thresholds)
        alerts, skew, drift = checks.check(self.train, serving, before, judged_schema)
        sample = self._sample(set(served))
        rate = thresholds.false_alarm_rate
        # Floors depend only on the features and the two sizes (their draws are seeded): windows of
        # the same size share them.
        key = (frozenset(served), len(rows), len(previous_rows))
        if key not in self._floors:
            self._floors[key] = noise.floors(
                sample, judged_schema, len(rows), len(previous_rows), thresholds.skew, rate
            )
        floors = self._floors[key]
        alerts = checks.calibrated(
            alerts,
            skew,
            "skew",
            floors.skew,
            len(rows),
            f"random windows of {len(rows)} training rows",
            rate,
            floors.rows_needed,
            sample.rows,
        )
        alerts = checks.calibrated(
            alerts,
            drift,
            "drift",
            floors.drift,
            len(rows),
            f"pairs of random windows of {len(rows)} and {len(previous_rows)} training rows",
            rate,
        )
        features = {
            name: {k: v for k, v in (("skew", skew.get(name)), ("drift", drift.get(name))) if v} for name in served
        }
        return Judged(serving, served, features, alerts, sample.rows)
