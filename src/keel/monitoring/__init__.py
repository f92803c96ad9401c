"""`keel monitor`: what production sees vs what training saw, with TFDV, from PredictionLog files.

`monitor()` reads the request logs of one model version, computes their statistics with TFDV,
finds the version's schema and training statistics through ML Metadata, and checks the schema
(SERVING environment), skew (training vs serving) and drift (the window before `--since` vs the one
after). Skew and drift alert only above the noise floor as well as the threshold: what random
windows of training rows of the same size exceed `false_alarm_rate` of the time
(keel.monitoring.noise). With labels it also measures the model on live traffic: for classification live accuracy
against the eval accuracy (`accuracy_drop`); for regression live MAE and RMSE, the spec's eval
metric against its eval value (`error_increase`). Thresholds come from the `[monitor]` section of
the spec recorded with the newest run that trained or reused the model.
"""

import csv
import dataclasses
import datetime
import logging
import math
import statistics
from pathlib import Path

import numpy as np

from keel.core.tasks import metric_of
from keel.monitoring import logs, noise, windows
from keel.monitoring.checks import Alert, Thresholds
from keel.monitoring.judge import Judge
from keel.monitoring.logs import LogError
from keel.monitoring.report import describe_error, write_reports


@dataclasses.dataclass
class MonitorReport:
    summary: dict
    alerts: list[Alert]
    html: Path
    json: Path

    def render(self) -> str:
        """The console summary: the window, each alert on one line, where the reports are."""
        s = self.summary
        if "windows" in s:
            return self._render_windows()
        window = s["window"]
        previous = f"{s['previous_rows']} rows" if s["previous_rows"] else "none"
        lines = [
            f"monitor of {s['model']} version {s['version']}: {s['rows']} rows in {s['requests']} requests "
            f"({window['from']} to {window['to']}); previous window: {previous}"
        ]
        if s.get("accuracy"):
            a = s["accuracy"]
            lines.append(
                f"  live accuracy {a['live']:.4f} on {a['labelled_rows']} labelled rows (eval {a['eval']:.4f})"
            )
        if s.get("error"):
            lines.append(f"  {describe_error(s['error'])}")
        for path in s.get("truncated_files", []):
            lines.append(f"  skipped the torn last record of {path} (its writer was stopped mid-record)")
        for feature, measured in s["features"].items():
            for kind, m in measured.items():
                if m["verdict"].startswith(("too few", "within chance")):
                    lines.append(f"  {feature}: {kind}: {m['verdict']}")
        for alert in self.alerts:
            lines.append(f"  alert: {alert.feature}: {alert.kind}: {alert.description.strip()}")
        lines.append(f"  {len(self.alerts)} alert(s); report: {self.html}, {self.json}")
        return "\n".join(lines)

    def _render_windows(self) -> str:
        s = self.summary
        lines = [f"monitor of {s['model']} in {len(s['windows'])} windows of {s['window']['size']}"]
        for w in s["windows"]:
            lines.append(
                f"  window {w['index']} {w['from']} to {w['to']}: {w['rows']} rows in {w['requests']} requests, "
                f"version {w['version']}: {len(w['alerts'])} alert(s)"
            )
            for a in w["alerts"]:
                lines.append(f"    alert: {a['feature']}: {a['kind']}: {a['description'].strip()}")
        for change in s["version_changes"]:
            lines.append(f"  version {change['from']} -> {change['to']} at {change['time']}")
        lines.append(f"  {len(self.alerts)} alert(s); report: {self.html}, {self.json}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """What `keel monitor --json` prints: report.json's content and where both reports are."""
        return {**self.summary, "report_html": str(self.html), "report_json": str(self.json)}


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_labels(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="") as handle:
            rows = [r for r in csv.reader(handle) if r]
    except OSError as e:
        raise LogError(f"--labels: cannot read {path}: {e.strerror}") from None
    if rows and [c.strip() for c in rows[0]] == ["request_id", "label"]:
        rows = rows[1:]
    for number, row in enumerate(rows, 1):
        if len(row) != 2:
            raise LogError(f"--labels: {path}: row {number} has {len(row)} fields; expected request_id,label")
    return {request_id.strip(): label.strip() for request_id, label in rows}


def _eval_value(lineage, metric: str) -> float | None:
    """The Evaluator's value of `metric` for the model, or None if ML Metadata has no evaluation of it."""
    from keel.mlmd.evaluation import overall_metrics

    if not lineage.evaluation_uri:
        return None
    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)  # TFMA's reader warns about its own use of a deprecated TF API
    try:
        return overall_metrics(lineage.evaluation_uri).get(metric)
    finally:
        tf_log.setLevel(level)


def _joined(rows, labels: dict[str, str], attribute: str, output: str) -> list[tuple]:
    """(request id, what the model answered, the label) of each labelled row."""
    joined = [(r.request_id, getattr(r, attribute), labels[r.request_id]) for r in rows if r.request_id in labels]
    if not joined:
        raise LogError(f"--labels: none of the {len(labels)} labels names a logged request id of this window")
    if any(predicted is None for _, predicted, _ in joined):
        raise LogError(f"--labels: the logged responses have no {output!r} output to compare labels with")
    return joined


def wilson_upper(successes: int, n: int, false_alarm_rate: float) -> float:
    """The one-sided Wilson upper bound of a proportion: the true value is below it but `false_alarm_rate` of the time."""
    z = statistics.NormalDist().inv_cdf(1 - false_alarm_rate)
    p = successes / n
    center = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (center + spread) / (1 + z * z / n))


def _accuracy(rows, labels: dict[str, str], lineage, thresholds: Thresholds, label_name: str):
    """Live accuracy with its upper confidence bound; an alert when even that bound is more than
    `accuracy_drop` below the eval accuracy (chance alone gives such a low bound `false_alarm_rate` of the time)."""
    joined = _joined(rows, labels, "predicted", "classes")
    right = sum(p == label for _, p, label in joined)
    live = right / len(joined)
    upper = wilson_upper(right, len(joined), thresholds.false_alarm_rate)
    metric = metric_of(lineage.spec.get("eval", {}).get("metric"), "classification").name
    evaluated = _eval_value(lineage, metric)
    found = {
        "live": live,
        "upper_bound": upper,
        "labelled_rows": len(joined),
        "eval": evaluated,
        "metric": metric,
        "max_drop": thresholds.accuracy_drop,
    }
    alerts = []
    if evaluated is not None and upper < evaluated - thresholds.accuracy_drop:
        alerts.append(
            Alert(
                label_name,
                "accuracy",
                "LIVE_ACCURACY_LOW",
                f"live accuracy {live:.4f} on {len(joined)} labelled rows (at most {upper:.4f} at false alarm rate "
                f"{thresholds.false_alarm_rate:g}) is more than {thresholds.accuracy_drop:g} below the eval "
                f"{metric} {evaluated:.4f}",
            )
        )
    return found, alerts


def _number(request_id: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LogError(f"--labels: request {request_id}: label {text!r} is not a number; a regression's labels are")
    return value


BOOTSTRAP_RESAMPLES = 2000


def _regression_metrics(errors: np.ndarray) -> dict[str, np.ndarray]:
    """MAE, MSE and RMSE along the last axis of prediction-minus-label `errors`."""
    mse = np.mean(errors * errors, axis=-1)
    return {
        "mean_absolute_error": np.mean(np.abs(errors), axis=-1),
        "mean_squared_error": mse,
        "root_mean_squared_error": np.sqrt(mse),
    }


def _error(rows, labels: dict[str, str], lineage, thresholds: Thresholds, label_name: str):
    """Live MAE and RMSE of a regression model, and a lower confidence bound of the spec's eval metric
    (bootstrap over the labelled rows); an alert when even that bound exceeds the eval value by more
    than `error_increase` of it."""
    joined = _joined(rows, labels, "prediction", "predictions")
    errors = np.array([p - _number(request_id, label) for request_id, p, label in joined])
    live = {name: float(value) for name, value in _regression_metrics(errors).items()}
    metric = metric_of(lineage.spec.get("eval", {}).get("metric"), "regression").name
    drawn = np.random.default_rng(0).integers(0, len(errors), (BOOTSTRAP_RESAMPLES, len(errors)))
    lower = float(np.quantile(_regression_metrics(errors[drawn])[metric], thresholds.false_alarm_rate))
    evaluated = _eval_value(lineage, metric)
    bound = evaluated * (1 + thresholds.error_increase) if evaluated is not None else None
    found = {
        "metric": metric,
        "live": live[metric],
        "lower_bound": lower,
        "eval": evaluated,
        "bound": bound,
        "max_increase": thresholds.error_increase,
        "labelled_rows": len(errors),
        "mae": live["mean_absolute_error"],
        "rmse": live["root_mean_squared_error"],
    }
    alerts = []
    if bound is not None and lower > bound:
        alerts.append(
            Alert(
                label_name,
                "error",
                "LIVE_ERROR_HIGH",
                f"live {metric} {live[metric]:.4g} on {len(errors)} labelled rows is above {bound:.4g}, "
                f"the eval {metric} {evaluated:.4g} + {thresholds.error_increase:.0%} (at least {lower:.4g} "
                f"at false alarm rate {thresholds.false_alarm_rate:g})",
            )
        )
    return found, alerts


def _one_model(predicts: list, log_dir: Path) -> list[str]:
    """The one model name the logged requests are for (a LogError when they mix models)."""
    models = sorted({p.model for p in predicts})
    if len(models) != 1:
        raise LogError(
            f"--logs: {log_dir} holds requests for {len(models)} models ({', '.join(models)}); "
            "give each model its own log directory"
        )
    return models


def monitor(
    workdir: Path,
    log_dir: Path,
    out: Path,
    version: str | None = None,
    since: str | None = None,
    labels: Path | None = None,
) -> MonitorReport:
    """Checks the logged requests of one model version; writes out/report.html and out/report.json."""
    start = logs.parse_since(since)
    predicts, truncated = logs.read_predict_logs(log_dir)
    models = _one_model(predicts, log_dir)
    logged_versions = sorted({p.version for p in predicts}, key=int)
    version = version or logged_versions[-1]
    predicts = [p for p in predicts if p.version == version]
    if not predicts:
        raise LogError(
            f"--model: no logged requests for version {version}; the logs hold versions {', '.join(logged_versions)}"
        )
    current = [p for p in predicts if start is None or p.time >= start]
    previous = [p for p in predicts if start is not None and p.time < start]
    if not current:
        raise LogError(f"--since: no logged requests for version {version} at or after {since}")

    judge = Judge(workdir, version)
    lineage, schema, thresholds = judge.lineage, judge.schema, judge.thresholds
    rows = [row for p in current for row in logs.to_rows(p, schema)]
    previous_rows = [row for p in previous for row in logs.to_rows(p, schema)]
    judged = judge.judge(rows, previous_rows)
    alerts = judged.alerts
    accuracy = error = None
    if labels is not None:
        label_name = lineage.spec.get("data", {}).get("label", "label")
        # What the logged responses hold says the task: predicted numbers (regression) or classes.
        if any(r.prediction is not None for r in rows):
            error, label_alerts = _error(rows, _read_labels(labels), lineage, thresholds, label_name)
        else:
            accuracy, label_alerts = _accuracy(rows, _read_labels(labels), lineage, thresholds, label_name)
        alerts += label_alerts

    summary = {
        "model": models[0],
        "version": version,
        "requests": len(current),
        "rows": len(rows),
        "window": {"since": since, "from": _iso(current[0].time), "to": _iso(current[-1].time)},
        "previous_rows": len(previous_rows),
        "thresholds": dataclasses.asdict(thresholds),
        "noise_floors": {"resamples": noise.RESAMPLES, "training_rows": judged.training_rows},
        "training_statistics": str(lineage.train_statistics_file),
        "schema": str(lineage.schema_file),
        "served_features": judged.served,
        "features": judged.features,
        "alerts": [dataclasses.asdict(a) for a in alerts],
        "accuracy": accuracy,
        "error": error,
        "truncated_files": truncated,
    }
    html_path, json_path = write_reports(Path(out), summary, judge.train, judged.serving)
    return MonitorReport(summary, alerts, html_path, json_path)


def monitor_windows(workdir: Path, log_dir: Path, out: Path, window: str, version: str | None = None) -> MonitorReport:
    """Checks the logged requests in consecutive windows (`window`: a duration such as 1h, or a row
    count), each against training and the window before; writes out/report.html and out/report.json."""
    size = windows.parse_window(window)
    predicts, truncated = logs.read_predict_logs(log_dir)
    models = _one_model(predicts, log_dir)
    if version is not None:
        logged = sorted({p.version for p in predicts}, key=int)
        predicts = [p for p in predicts if p.version == version]
        if not predicts:
            raise LogError(
                f"--model: no logged requests for version {version}; the logs hold versions {', '.join(logged)}"
            )
    judging = windows.WindowJudge(workdir, size)
    entries = []
    for group in windows.split(predicts, size):
        complete = bool(size.seconds) or sum(windows.request_rows(p) for p in group) >= size.rows
        entry, judge, judged = judging.next(group, complete)
        entries.append(entry)
    summary = windows.summary(models[0], entries, judge, judged, size, windows.version_changes(predicts), truncated)
    html_path, json_path = write_reports(Path(out), summary, judge.train, judged.serving)
    alerts = [a for group in entries for a in _alerts_of(group)]
    return MonitorReport(summary, alerts, html_path, json_path)


def _alerts_of(entry: dict) -> list[Alert]:
    """A window entry's alerts as Alerts."""
    return [Alert(**{k: v for k, v in a.items() if k != "window"}) for a in entry["alerts"]]
