"""Training across processes: `[train] workers = 2` trains penguin in two processes on 127.0.0.1 under
MultiWorkerMirroredStrategy, each with the TF_CONFIG a Vertex AI worker pool would give it.

One workdir, three runs: a worker killed mid-training (the run fails in one line, the chief is stopped,
nothing is published), `keel run` itself killed mid-training (no training process outlives it), then
the same command again, which trains to the usual bar and pushes."""

import json
import os
import re
import time
from pathlib import Path

import pytest
import tensorflow as tf

from keel.executors.training.record import RECORD_FILE

from checks import nothing_half_written, one_line_error
from helpers import eval_metric, node_states, penguin_spec, pushed_versions
from processes import Run

WORKERS = 2
# Long enough that a kill at the first progress line (a tenth of the steps) lands while training.
STEPS = 1000


def _pids(run: Run) -> dict[str, int]:
    """Role -> pid, from the line the Trainer prints when it starts its processes."""
    line = next(line for line in run.lines if "training processes on 127.0.0.1" in line)
    return {role: int(pid) for role, pid in re.findall(r"(chief|worker \d+) pid (\d+)", line)}


def _gone(pid: int, timeout: float = 30) -> bool:
    """Whether process `pid` ends (or is a zombie, ended but not yet reaped) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


class ClusterRuns:
    def __init__(self, root: Path):
        self.workdir = root / "work"
        spec = penguin_spec(root, {"train.workers": WORKERS, "train.steps": STEPS})

        killed_worker = Run(spec, self.workdir)
        killed_worker.wait_for("Trainer: step")
        self.first_pids = _pids(killed_worker)
        os.kill(self.first_pids["worker 1"], 9)
        self.first = killed_worker.finish()
        self.chief_stopped = _gone(self.first_pids["chief"])
        self.first_states = node_states(self.workdir)
        self.versions_after_first = pushed_versions(self.workdir)

        killed_run = Run(spec, self.workdir)
        killed_run.wait_for("Trainer: step")
        self.second_pids = _pids(killed_run)
        killed_run.kill()
        self.orphans = [role for role, pid in self.second_pids.items() if not _gone(pid)]

        completed = Run(spec, self.workdir)
        self.third = completed.finish()
        self.third_states = node_states(self.workdir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> ClusterRuns:
    return ClusterRuns(tmp_path_factory.mktemp("workers"))


def test_a_killed_worker_stops_the_run_in_one_line(runs):
    one_line_error(runs.first, f"train.workers = {WORKERS}", "worker 1", "killed by SIGKILL", "run again")
    assert set(runs.first_pids) == {"chief", "worker 1"}
    assert runs.chief_stopped, "the chief kept running after its peer was killed"
    assert runs.first_states["Trainer"] == "FAILED"
    assert runs.versions_after_first == []
    nothing_half_written(runs.workdir)


def test_no_training_process_outlives_a_killed_run(runs):
    assert runs.orphans == [], f"still running after keel run was killed: {runs.orphans}"


def test_the_next_run_trains_across_two_processes_to_the_bar(runs):
    assert runs.third.returncode == 0, runs.third.stdout[-3000:] + runs.third.stderr[-3000:]
    assert f"MultiWorkerMirroredStrategy on {WORKERS} CPU replicas in {WORKERS} processes" in runs.third.stdout
    assert "global batch 64" in runs.third.stdout  # 32 per replica
    assert eval_metric(runs.third.stdout, "sparse_categorical_accuracy") >= 0.9
    assert "blessed: yes" in runs.third.stdout
    assert runs.third_states["Trainer"] == "COMPLETE"
    (version,) = pushed_versions(runs.workdir)
    record = json.loads((Path(version) / "assets.extra" / RECORD_FILE).read_text())
    assert record["placement"] == {
        "strategy": "MultiWorkerMirroredStrategy",
        "device": "cpu",
        "replicas": WORKERS,
        "workers": WORKERS,
    }
    assert "serving_raw" in tf.saved_model.load(version).signatures
    nothing_half_written(runs.workdir)
