"""Runs you can compare: `keel runs` over a real workdir, and the Trainer's TensorBoard logs.

One workdir, two real runs: a cold one of 20 steps, then `--set train.steps=30`, which re-runs the
Trainer and what follows it while everything upstream is cached.
"""

import json
from pathlib import Path

import pytest

from helpers import keel, penguin_spec

UPSTREAM = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform"]


class TwoRuns:
    def __init__(self, root: Path):
        self.spec = penguin_spec(root, steps=20, eval_steps=2, threshold=0.0)
        self.workdir = root / "work"
        self.first = keel("run", self.spec, "--workdir", self.workdir)
        self.second = keel("run", self.spec, "--workdir", self.workdir, "--json", "--set", "train.steps=30")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> TwoRuns:
    runs = TwoRuns(tmp_path_factory.mktemp("runs"))
    assert runs.first.returncode == 0, runs.first.stderr[-3000:]
    assert runs.second.returncode == 0, runs.second.stderr[-3000:]
    return runs


def test_runs_lists_both_runs_with_the_spec_change_and_what_re_ran(two_runs):
    shown = keel("runs", "--workdir", two_runs.workdir)
    assert shown.returncode == 0, shown.stderr[-3000:]
    header, first, second = shown.stdout.splitlines()
    assert "sparse_categorical_accuracy" in header and "changes vs the previous run" in header
    assert "(first run)" in first and "all " in first
    assert "Trainer,Evaluator,Pusher" in second
    assert second.endswith("train.steps: 20 -> 30 (--set train.steps=30)")


def test_runs_json_says_what_ran_was_cached_and_measured(two_runs):
    shown = keel("runs", "--workdir", two_runs.workdir, "--json")
    assert shown.returncode == 0, shown.stderr[-3000:]
    first, second = json.loads(shown.stdout)
    assert first["cached"] == [] and first["spec_changes"] == [] and first["status"] == "complete"
    assert set(second["ran"]) >= {"Trainer", "Evaluator", "Pusher"}
    assert set(second["cached"]) >= set(UPSTREAM)
    assert second["spec_changes"] == [{"field": "train.steps", "a": 20, "b": 30, "absent": []}]
    assert second["overrides"] == {"train.steps": 30}
    assert second["hparams"] == {"hidden": [32, 16], "learning_rate": 0.01}
    assert 0.0 <= second["metrics"]["sparse_categorical_accuracy"] <= 1.0
    assert second["blessed"] is True and second["pushed_version"]
    assert second["seconds"] > 0 and second["started_ms"] >= first["started_ms"]


def test_the_plot_draws_both_runs_metric_blessed_runs_marked(two_runs, tmp_path):
    import xml.etree.ElementTree as ET

    out = tmp_path / "plots" / "runs.svg"
    shown = keel("runs", "--workdir", two_runs.workdir, "--plot", out)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.splitlines()[-1] == f"plot: {out} (sparse_categorical_accuracy of 2 run(s))"
    dots = [c for c in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}circle") if c.get("class")]
    assert [d.get("class") for d in dots] == ["blessed", "blessed"]
    wrong = keel("runs", "--workdir", two_runs.workdir, "--plot", tmp_path / "runs.png")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: --plot ")


def test_a_workdir_without_runs_is_one_line(tmp_path):
    shown = keel("runs", "--workdir", tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout == f"no runs yet in {tmp_path} (keel run SPEC starts one)\n"


def test_the_summary_names_tensorboard_and_the_logs_hold_the_training_loss(two_runs):
    import tensorflow as tf

    logdir = json.loads(two_runs.second.stdout)["tensorboard_logdir"]
    assert f"  tensorboard: tensorboard --logdir {two_runs.workdir.resolve()}" in two_runs.first.stdout
    loss, tags = {}, set()
    for events in Path(logdir).glob("*/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                tags.add(f"{events.parent.name}/{value.tag}")
                if value.tag == "batch_loss":
                    loss[event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted(loss) == list(range(1, 31))  # 30 steps, each logged (fewer than 100 planned)
    assert all(v > 0 for v in loss.values())
    assert {"train/batch_sparse_categorical_accuracy", "train/epoch_loss", "validation/validation_loss"} <= tags
