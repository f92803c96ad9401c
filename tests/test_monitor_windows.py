"""`keel monitor --window` on logs spanning three hours (written with keel's own request logger and
controlled request times), `--follow` on the rotating logs of a real `keel serve`, stopped by
SIGTERM, and `keel serve --monitor-every` running the follower beside the server."""

import datetime
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from keel.serving.request_log import LoggedRequest, RequestLogWriter

from helpers import keel
from serving_helpers import FEATURES, Server, eval_examples, instance, serving_copy, wait_for_logged

HOUR = 3600
START = datetime.datetime(2026, 12, 1, 10, tzinfo=datetime.timezone.utc).timestamp()


def shifted(example: tf.train.Example, i: int) -> tf.train.Example:
    """body_mass_g x1.5 and, on every other row, an island training never saw."""
    moved = tf.train.Example.FromString(example.SerializeToString())
    mass = moved.features.feature["body_mass_g"]
    for kind in ("int64_list", "float_list"):
        values = list(getattr(mass, kind).value)
        if values:
            del getattr(mass, kind).value[:]
            getattr(mass, kind).value.extend(type(v)(v * 1.5) for v in values)
    if i % 2 == 0:
        moved.features.feature["island"].bytes_list.value[:] = [b"Atlantis"]
    return moved


def write_logs(directory, hours: list[tuple[str, bool]], examples) -> None:
    """One window per hour from START: (version, shifted?) each, every eval row one request."""
    writer = RequestLogWriter(directory, max_bytes=16 << 10)
    writer.start()
    for hour, (version, shift) in enumerate(hours):
        for i, example in enumerate(examples):
            served = shifted(example, i) if shift else example
            writer.add(
                LoggedRequest(
                    f"h{hour}-{i}",
                    START + hour * HOUR + i * 10,
                    "penguin",
                    version,
                    "serving_default",
                    {"examples": np.array([served.SerializeToString()], dtype=object)},
                    {},
                )
            )
    writer.close()


def test_hourly_windows_flag_the_shifted_hour_only_and_mark_the_version_change(penguin_runs, tmp_path):
    first, second = (Path(v).name for v in penguin_runs.versions_after_steps_changed[:2])
    logs, out = tmp_path / "logs", tmp_path / "report"
    write_logs(logs, [(first, False), (first, True), (second, False)], eval_examples(penguin_runs.workdir))
    result = keel(
        "monitor", "--workdir", penguin_runs.workdir, "--logs", logs, "--window", "1h", "--out", out, timeout=600
    )
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    windows = report["windows"]
    assert [w["from"] for w in windows] == ["2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z", "2026-12-01T12:00:00Z"]
    assert [w["version"] for w in windows] == [first, first, second]
    skewed = [{a["feature"] for a in w["alerts"] if a["kind"] == "skew"} for w in windows]
    assert skewed == [set(), {"body_mass_g", "island"}, set()]
    mass = windows[1]["features"]["body_mass_g"]["skew"]
    assert mass["verdict"] == "shifted" and mass["value"] > mass["threshold"] and mass["value"] > mass["noise_floor"]
    assert mass["rows"] == windows[1]["rows"] == len(eval_examples(penguin_runs.workdir))
    assert all(w["alerts"] == [] for w in windows[:1])
    assert {a["window"] for a in report["alerts"]} <= {1, 2}
    assert [(c["from"], c["to"]) for c in report["version_changes"]] == [(first, second)]
    assert "window 1 2026-12-01T11:00:00Z to 2026-12-01T12:00:00Z" in result.stdout
    page = (out / "report.html").read_text()
    assert "<h3>body_mass_g: skew over time</h3>" in page and 'class="version-change"' in page
    assert page.count('<svg class="trend"') == len(
        {(a["feature"], a["kind"]) for a in report["alerts"]}
        - {(a["feature"], a["kind"]) for a in report["alerts"] if a["kind"] == "schema"}
    )


def _events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(path, predicate, seconds: float = 400) -> list[dict]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = _events(path) if path.exists() else []
        if predicate(events):
            return events
        time.sleep(1)
    raise AssertionError(f"{path}: {path.read_text() if path.exists() else 'missing'}")


def test_follow_judges_row_windows_of_rotating_logs_and_stops_cleanly_on_sigterm(penguin_runs, tmp_path):
    server = Server(serving_copy(penguin_runs.workdir, tmp_path / "work"), tmp_path / "logs", "--log-max-bytes", "2048")
    out_file, err_file = tmp_path / "follow.out", tmp_path / "follow.err"
    with open(out_file, "w") as out, open(err_file, "w") as err:
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keel.cli",
                "monitor",
                "--workdir",
                str(penguin_runs.workdir),
                "--logs",
                str(server.log_dir),
                "--follow",
                "--window",
                "20",
                "--out",
                str(tmp_path / "monitor"),
            ],
            stdout=out,
            stderr=err,
        )
    try:
        examples = eval_examples(penguin_runs.workdir)[:50]
        for e in examples:
            assert server.predict({"instances": [instance(e, FEATURES)]}).status_code == 200
        wait_for_logged(server.log_dir, len(examples))
        assert len(list(server.log_dir.glob("prediction_log-*.tfrecord"))) > 2  # the logs rotated
        _wait_for(out_file, lambda events: sum(e["event"] == "window" for e in events) == 2)
    finally:
        follower.send_signal(signal.SIGTERM)
        returncode = follower.wait(120)
        server.stop()
    assert returncode == 0, err_file.read_text()[-3000:]
    assert "Traceback" not in err_file.read_text()
    events = _events(out_file)  # every line is one JSON object
    assert events[0]["event"] == "started" and events[-1]["event"] == "stopped"
    judged = [e for e in events if e["event"] == "window"]
    assert [(w["index"], w["rows"], w["requests"]) for w in judged] == [(0, 20, 20), (1, 20, 20)]
    assert events[-1]["windows"] == 2 and events[-1]["unreported_requests"] == 10
    assert all(e["event"] in ("started", "window", "alert", "stopped") for e in events)
    report = json.loads((tmp_path / "monitor" / "report.json").read_text())
    assert len(report["windows"]) == 2


def test_serve_monitor_every_runs_the_follower_beside_the_server(penguin_runs, tmp_path):
    server = Server(serving_copy(penguin_runs.workdir, tmp_path / "work"), tmp_path / "logs", "--monitor-every", "3")
    events_file = server.log_dir / "monitor" / "events.jsonl"
    examples = eval_examples(penguin_runs.workdir)[:20]
    try:
        for e in examples:  # answered while the monitor process starts beside the server
            assert server.predict({"instances": [instance(e, FEATURES)]}).status_code == 200
        _wait_for(
            events_file, lambda events: sum(e["requests"] for e in events if e["event"] == "window") == len(examples)
        )
    finally:
        returncode, output = server.stop()
    assert returncode in (0, -15), output  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "stopped: answered 20 predict requests" in output
    events = _events(events_file)
    assert events[0]["event"] == "started" and events[-1]["event"] == "stopped"
    assert events[-1]["unreported_requests"] == 0
    assert json.loads((server.log_dir / "monitor" / "report.json").read_text())["windows"]
