"""`keel runs`' table: one row per run, spec changes against the previous run, what ran and was cached."""

import json

from keel.registry.diff import spec_changes
from keel.registry.runs import Run, render


def run(index: int, **fields) -> Run:
    values = dict(
        run_id=f"2026-12-02T05:0{index}:00.000000",
        started_ms=1_796_187_600_000 + index * 60_000,
        seconds=40.0,
        status="complete",
        ran=["CsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"],
        cached=[],
        failed=[],
        spec_changes=[],
        overrides={},
        hparams={"hidden": [32, 16], "learning_rate": 0.01},
        metrics={"example_count": 68, "sparse_categorical_accuracy": 0.97},
        blessed=True,
        pushed_version="1796187660",
    )
    values.update(fields)
    return Run(index=index, **values)


def test_no_runs_is_one_line_naming_the_workdir():
    assert render([], "/w") == "no runs yet in /w (keel run SPEC starts one)"


def test_one_row_per_run_with_changes_against_the_previous_one():
    second = run(
        2,
        seconds=21.25,
        ran=["Trainer", "Evaluator", "Pusher"],
        cached=["CsvExampleGen", "Transform"],
        spec_changes=spec_changes({"train": {"steps": 20}}, {"train": {"steps": 30}}),
        overrides={"train.steps": 30},
        metrics={"example_count": 68, "sparse_categorical_accuracy": 0.98},
        pushed_version=None,
        blessed=False,
    )
    lines = render([run(1), second]).splitlines()
    assert len(lines) == 3
    header, first, last = lines
    assert header.split()[:4] == ["#", "run", "started", "(UTC)"]
    assert header.index("sparse_categorical_accuracy") < header.index("example_count")  # the judged metric first
    assert "all 5" in first and "(first run)" in first and "1796187660" in first and " yes " in first
    assert "Trainer,Evaluator,Pusher" in last and "21.2" in last and " no " in last
    assert last.endswith("train.steps: 20 -> 30 (--set train.steps=30)")
    assert '{"hidden":[32,16],"learning_rate":0.01}' in last
    assert "0.9800" in last and "2026-12-02 05:02:00" in last


def test_a_run_with_an_unchanged_spec_and_no_evaluation():
    shown = render([run(1), run(2, metrics={}, blessed=None, pushed_version=None, seconds=None)]).splitlines()[-1]
    assert "(spec unchanged)" in shown
    assert shown.split()[4] == "-"  # seconds unknown


def test_runs_are_plain_json():
    shown = json.loads(json.dumps(run(1).to_dict()))
    assert shown["ran"][-1] == "Pusher" and shown["metrics"]["sparse_categorical_accuracy"] == 0.97


def test_the_plot_marks_blessed_runs_and_skips_runs_without_the_metric(tmp_path):
    import xml.etree.ElementTree as ET

    import pytest

    from keel.core.errors import KeelError
    from keel.registry.plot import write_plot

    runs = [
        run(1),
        run(2, metrics={}, blessed=None),
        run(3, metrics={"example_count": 68, "sparse_categorical_accuracy": 0.91}, blessed=False),
    ]
    metric, count = write_plot(runs, tmp_path / "runs.svg")
    assert (metric, count) == ("sparse_categorical_accuracy", 2)
    svg = ET.parse(tmp_path / "runs.svg").getroot()
    dots = [c for c in svg.iter("{http://www.w3.org/2000/svg}circle") if c.get("class")]
    assert [d.get("class") for d in dots] == ["blessed", "not blessed"]
    assert [d.find("{http://www.w3.org/2000/svg}title").text for d in dots] == [
        "run 1: 0.9700, blessed",
        "run 3: 0.9100, not blessed",
    ]
    with pytest.raises(KeelError, match=r"^--plot .*runs.png: keel draws SVG"):
        write_plot(runs, tmp_path / "runs.png")
    with pytest.raises(KeelError, match="no run has an evaluated metric"):
        write_plot([run(1, metrics={})], tmp_path / "none.svg")
