"""The pure parts of `keel monitor --window` and `--follow`: window sizes, splitting, when a window
is due, when a log file is complete, version changes and which trends the report plots."""

import numpy as np
import pytest

from keel.monitoring.follow import GRACE_SECONDS, due, is_complete
from keel.monitoring.logs import LogError, LoggedPredict
from keel.monitoring.report import flagged_trends
from keel.monitoring.windows import WindowSize, bounds, parse_window, split, version_changes


def request(time: float, rows: int = 1, version: str = "1") -> LoggedPredict:
    return LoggedPredict(f"r{time}", time, "penguin", version, {"x": np.zeros(rows)}, None)


def test_window_sizes_are_durations_or_row_counts():
    assert parse_window("90s") == WindowSize(seconds=90)
    assert parse_window("15m") == WindowSize(seconds=900)
    assert parse_window("1h") == WindowSize(seconds=3600)
    assert parse_window("1.5d") == WindowSize(seconds=129600)
    assert parse_window("500") == WindowSize(rows=500)
    for bad in ("0", "0s", "1w", "ten", "", "2.5"):
        with pytest.raises(LogError, match=f"--window: {bad!r} is neither a duration"):
            parse_window(bad)


def test_time_windows_are_aligned_and_empty_ones_skipped():
    hour = 3600
    predicts = [request(t) for t in (10 * hour + 5, 10 * hour + 3599, 11 * hour, 13 * hour + 1)]
    groups = split(predicts, WindowSize(seconds=hour))
    assert [[p.time for p in g] for g in groups] == [[36005, 39599], [39600], [46801]]
    assert bounds(groups[0], WindowSize(seconds=hour)) == (36000, 39600)


def test_row_windows_take_requests_until_they_hold_the_rows():
    predicts = [request(t, rows) for t, rows in enumerate((2, 2, 1, 3, 1))]
    groups = split(predicts, WindowSize(rows=4))
    assert [[p.time for p in g] for g in groups] == [[0, 1], [2, 3], [4]]


def test_version_changes_name_the_first_request_of_each_new_version():
    changes = version_changes([request(1, version="1"), request(2, version="1"), request(3, version="2")])
    assert [(c["seconds"], c["from"], c["to"]) for c in changes] == [(3, "1", "2")]


def test_a_time_window_is_due_after_a_later_request_or_its_grace():
    size = WindowSize(seconds=60)
    assert due([request(61), request(100)], size, now=100) == 0
    assert due([request(61), request(100)], size, now=120 + GRACE_SECONDS) == 2
    assert due([request(61), request(100), request(121)], size, now=121) == 2
    assert due([request(1), request(2)], WindowSize(rows=3), now=1e9) == 0
    assert due([request(1, 2), request(2), request(3)], WindowSize(rows=3), now=0) == 2
    assert due([], size, now=1e9) == 0


def test_a_log_file_is_complete_once_its_writer_moved_on_or_is_gone():
    names = [
        "prediction_log-20261202T100000Z-7-00001.tfrecord",
        "prediction_log-20261202T100500Z-7-00002.tfrecord",
        "prediction_log-20261202T090000Z-5-00001.tfrecord",
    ]
    running = {7, 5}.__contains__
    assert is_complete(names[0], names, running)
    assert not is_complete(names[1], names, running)
    assert not is_complete(names[2], names, running)
    assert is_complete(names[2], names, {7}.__contains__)
    assert is_complete("a.tfrecord", ["a.tfrecord", "b.tfrecord"]) and not is_complete("b.tfrecord", ["a.tfrecord"])


def test_the_report_plots_the_checks_shifted_in_some_window():
    def window(verdicts):
        return {"features": {f: {"skew": {"verdict": v}} for f, v in verdicts.items()}}

    windows = [window({"a": "no shift", "b": "no shift"}), window({"a": "shifted", "b": "within chance: x"})]
    assert flagged_trends(windows) == [("a", "skew")]
