"""`keel monitor` on request logs written by a real `keel serve`: clean traffic, shifted traffic, labels;
and a regression model's labels (live MAE and RMSE)."""

import base64
import csv
import datetime
import json
import math
import shutil
import time

import pytest
import tensorflow as tf

from keel.monitoring import monitor
from keel.monitoring.logs import LogError

from helpers import keel
from serving_helpers import (
    FEATURES,
    Server,
    eval_examples,
    instance,
    label,
    serving_copy,
    shifted_instance,
    wait_for_logged,
)

MASS_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]


class Traffic:
    """Eval rows sent one request each, then the same rows with body_mass_g x1.5 and a new island."""

    def __init__(self, workdir, root):
        self.root = root
        server = Server(serving_copy(workdir, root / "work"), root / "logs")
        examples = eval_examples(workdir)
        try:
            self.clean_ids = [self._send(server, instance(e, FEATURES)) for e in examples]
            self.labels = {i: label(e) for i, e in zip(self.clean_ids, examples, strict=True)}
            wait_for_logged(server.log_dir, len(examples))
            self.clean_logs = root / "clean-logs"
            shutil.copytree(server.log_dir, self.clean_logs)
            boundary = math.floor(time.time()) + 1  # logs keep whole seconds
            time.sleep(max(0.0, boundary - time.time()))
            self.since = datetime.datetime.fromtimestamp(boundary, datetime.timezone.utc).isoformat()
            for i, e in enumerate(examples):
                self._send(server, shifted_instance(e, i))
        finally:
            self.stopped = server.stop()
        self.logs = server.log_dir

    @staticmethod
    def _send(server, row) -> str:
        response = server.predict({"instances": [row]})
        assert response.status_code == 200, response.text
        return response.headers["x-request-id"]


@pytest.fixture(scope="module")
def traffic(penguin_runs, tmp_path_factory):
    return Traffic(penguin_runs.workdir, tmp_path_factory.mktemp("monitor"))


def write_labels(path, labels: dict):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "label"])
        writer.writerows(labels.items())
    return path


def test_eval_rows_raise_no_alert(penguin_runs, traffic):
    out = traffic.root / "clean-report"
    result = monitor(
        penguin_runs.workdir, traffic.clean_logs, out, labels=write_labels(traffic.root / "labels.csv", traffic.labels)
    )
    assert result.alerts == []
    report = json.loads((out / "report.json").read_text())
    assert report["alerts"] == []
    assert report["rows"] == report["requests"] == len(traffic.clean_ids)
    assert sorted(report["served_features"]) == sorted(FEATURES)
    assert all(report["features"][f]["skew"]["value"] < report["thresholds"]["skew"] for f in FEATURES)
    assert report["accuracy"]["labelled_rows"] == len(traffic.labels)
    assert report["accuracy"]["live"] >= report["accuracy"]["eval"] - 0.05
    page = (out / "report.html").read_text()
    assert "0 alert(s)" in page and all(f"<h3>{f}</h3>" in page for f in FEATURES)
    assert "0 alert(s)" in result.render()


def test_shifted_traffic_raises_alerts_naming_exactly_the_shifted_features(penguin_runs, traffic):
    out = traffic.root / "shifted-report"
    result = keel(
        "monitor",
        "--workdir",
        penguin_runs.workdir,
        "--logs",
        traffic.logs,
        "--since",
        traffic.since,
        "--out",
        out,
        timeout=300,
    )
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert {a["feature"] for a in report["alerts"]} == {"body_mass_g", "island"}
    skew = report["features"]["body_mass_g"]["skew"]
    assert skew["verdict"] == "shifted" and skew["value"] > skew["noise_floor"] > 0
    assert any(
        a["description"].startswith("Jensen-Shannon divergence")
        and f"over {report['rows']} rows" in a["description"]
        and a["tfdv_description"]
        for a in report["alerts"]
        if a["kind"] == "skew"
    )
    kinds = {(a["feature"], a["kind"]) for a in report["alerts"]}
    assert {
        ("body_mass_g", "skew"),
        ("body_mass_g", "drift"),
        ("island", "skew"),
        ("island", "drift"),
        ("island", "schema"),
    } <= kinds
    assert any("Atlantis" in a["description"] for a in report["alerts"] if a["kind"] == "schema")
    assert report["requests"] == report["previous_rows"] == len(traffic.clean_ids)
    assert "alert: body_mass_g: skew:" in result.stdout and "alert: island: schema:" in result.stdout
    page = (out / "report.html").read_text()
    assert '<div class="feature flagged"><h3>body_mass_g</h3>' in page
    assert '<div class="feature"><h3>bill_length_mm</h3>' in page


def test_a_small_sample_of_eval_rows_raises_no_alert_and_says_why(penguin_runs, traffic):
    """13 eval rows: TFDV alone finds divergences above the threshold, but random windows of 13
    training rows show as much, so nothing alerts, and each such check says so."""
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(traffic.clean_logs.glob("*.tfrecord")))]
    few = traffic.root / "few-logs"
    few.mkdir()
    with tf.io.TFRecordWriter(str(few / "prediction_log-20261202T000000Z-1-00001.tfrecord")) as writer:
        for record in records[:: len(records) // 13][:13]:  # spread over the eval split, as random traffic is
            writer.write(record)
    result = monitor(penguin_runs.workdir, few, traffic.root / "few-report")
    assert result.summary["rows"] == 13
    assert result.alerts == [], result.render()
    skew = {name: measured["skew"] for name, measured in result.summary["features"].items()}
    above = {name for name, m in skew.items() if m["value"] > m["threshold"]}
    assert above, "TFDV alone would have raised no alert: the test shows nothing"
    for name in above:
        assert skew[name]["verdict"].startswith(("within chance", "too few rows to judge (n=13")), skew[name]
        assert skew[name]["noise_floor"] > skew[name]["threshold"] and skew[name]["rows"] == 13
    rendered = result.render()
    assert "0 alert(s)" in rendered and any(f"{name}: skew: " in rendered for name in above)


def test_wrong_labels_raise_a_live_accuracy_alert(penguin_runs, traffic):
    others = {"Adelie": "Gentoo", "Gentoo": "Chinstrap", "Chinstrap": "Adelie"}
    wrong = {i: others[species] for i, species in traffic.labels.items()}
    report = monitor(
        penguin_runs.workdir,
        traffic.clean_logs,
        traffic.root / "wrong-labels",
        labels=write_labels(traffic.root / "wrong.csv", wrong),
    )
    assert [(a.feature, a.kind) for a in report.alerts] == [("species", "accuracy")]
    assert report.summary["accuracy"]["live"] < report.summary["accuracy"]["upper_bound"] < 0.5


def test_monitor_errors_name_what_is_wrong(penguin_runs, traffic, tmp_path):
    with pytest.raises(LogError, match="--logs: .* is not a directory"):
        monitor(penguin_runs.workdir, tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(LogError, match="--model: no logged requests for version 7"):
        monitor(penguin_runs.workdir, traffic.logs, tmp_path / "out", version="7")
    with pytest.raises(LogError, match="--since: 'yesterday' is not an ISO 8601 time"):
        monitor(penguin_runs.workdir, traffic.logs, tmp_path / "out", since="yesterday")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a log")
    with pytest.raises(LogError, match="1 file.* in .*junk hold no PredictLog records"):
        monitor(penguin_runs.workdir, tmp_path / "junk", tmp_path / "out")


class MassTraffic:
    """The regression model's eval rows, one request each: even rows as tf.Examples of the model's
    features (serving_default), odd rows as raw columns (serving_raw); their labels in grams by request id."""

    def __init__(self, workdir, root):
        self.root = root
        server = Server(serving_copy(workdir, root / "work"), root / "logs")
        examples = eval_examples(workdir)
        self.labels = {}
        try:
            for i, e in enumerate(examples):
                if i % 2:
                    body = {"instances": [instance(e, MASS_FEATURES)]}
                else:
                    served = tf.train.Example()
                    for name in MASS_FEATURES:
                        served.features.feature[name].CopyFrom(e.features.feature[name])
                    body = {"instances": [{"b64": base64.b64encode(served.SerializeToString()).decode()}]}
                response = server.predict(body, path="/v1/models/penguin_mass:predict")
                assert response.status_code == 200, response.text
                assert len(response.json()["predictions"]) == 1
                (grams,) = e.features.feature["body_mass_g"].int64_list.value
                self.labels[response.headers["x-request-id"]] = float(grams)
            wait_for_logged(server.log_dir, len(examples))
        finally:
            self.stopped = server.stop()
        self.logs = server.log_dir


@pytest.fixture(scope="module")
def mass_traffic(mass_run, tmp_path_factory):
    return MassTraffic(mass_run.workdir, tmp_path_factory.mktemp("monitor-mass"))


def test_regression_labels_give_live_mae_and_rmse_equal_to_the_eval_rmse_on_the_eval_rows(mass_run, mass_traffic):
    out = mass_traffic.root / "mass-report"
    labels = write_labels(mass_traffic.root / "mass-labels.csv", mass_traffic.labels)
    result = monitor(mass_run.workdir, mass_traffic.logs, out, labels=labels)
    error = json.loads((out / "report.json").read_text())["error"]
    assert error["labelled_rows"] == len(mass_traffic.labels)  # both signatures' logs were read
    assert error["metric"] == "root_mean_squared_error" and error["live"] == error["rmse"]
    # The live rows are the eval rows, so live RMSE is the Evaluator's RMSE, up to float32 sums.
    assert error["rmse"] == pytest.approx(error["eval"], rel=1e-4)
    assert 0 < error["mae"] <= error["rmse"]
    assert error["bound"] == pytest.approx(error["eval"] * 1.1)
    assert result.alerts == []
    assert result.summary["accuracy"] is None and sorted(result.summary["served_features"]) == sorted(MASS_FEATURES)
    line = f"live MAE {error['mae']:.4g}, RMSE {error['rmse']:.4g} on {len(mass_traffic.labels)} labelled rows"
    assert line in result.render()
    page = (out / "report.html").read_text()
    assert line in page and "accuracy" not in page


def test_labels_far_off_raise_a_live_error_alert_naming_the_metric_and_bound(mass_run, mass_traffic):
    off = {i: grams + 1000.0 for i, grams in mass_traffic.labels.items()}
    out = mass_traffic.root / "off-report"
    result = keel(
        "monitor",
        "--workdir",
        mass_run.workdir,
        "--logs",
        mass_traffic.logs,
        "--labels",
        write_labels(mass_traffic.root / "off.csv", off),
        "--out",
        out,
        timeout=300,
    )
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    (alert,) = [a for a in report["alerts"] if a["kind"] == "error"]
    error = report["error"]
    assert alert["feature"] == "body_mass_g" and alert["reason"] == "LIVE_ERROR_HIGH"
    assert error["live"] == error["rmse"] > 2 * error["eval"] and error["bound"] == pytest.approx(1.1 * error["eval"])
    assert (
        f"alert: body_mass_g: error: live root_mean_squared_error {error['rmse']:.4g} on {len(off)} labelled rows "
        f"is above {error['bound']:.4g}, the eval root_mean_squared_error {error['eval']:.4g} + 10% "
        f"(at least {error['lower_bound']:.4g} at false alarm rate 0.01)"
    ) in result.stdout
    assert error["bound"] < error["lower_bound"] < error["live"]


def test_regression_labels_that_are_not_numbers_are_refused(mass_run, mass_traffic, tmp_path):
    request_id = next(iter(mass_traffic.labels))
    labels = write_labels(tmp_path / "words.csv", {request_id: "heavy"})
    with pytest.raises(LogError, match=f"--labels: request {request_id}: label 'heavy' is not a number"):
        monitor(mass_run.workdir, mass_traffic.logs, tmp_path / "out", labels=labels)
