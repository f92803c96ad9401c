"""A full disk: the Trainer's and then the Pusher's writes hit ENOSPC on small tmpfs mounts inside the
workdir. Each run fails with one line, leaves nothing LIVE half-written and no version serving would load,
and the run after space is freed completes from the cache."""

import os
import subprocess
from pathlib import Path

import pytest

from keel.serving.versions import versions

from checks import nothing_half_written, one_line_error
from helpers import keel, node_states, penguin_spec

UPSTREAM = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate", "Transform"]


@pytest.fixture
def tmpfs():
    """mount(path, size) puts a tmpfs of `size` at `path`; resize(path, size) changes it; all unmounted after."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> None:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"this machine cannot mount a tmpfs: {done.stderr.strip()}")
        mounted.append(path)

    def resize(path: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)

    yield mount, resize
    for path in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def test_a_full_disk_in_training_and_in_the_push_fails_in_one_line_and_the_next_run_completes(tmp_path, tmpfs):
    mount, resize = tmpfs
    spec = penguin_spec(tmp_path, steps=60)
    work = tmp_path / "work"
    trainer, serving = work / "pipeline" / "Trainer", work / "serving" / "penguin"

    mount(trainer, "96k")  # too small for the SavedModel the Trainer writes
    full = keel("run", spec, "--workdir", work)
    one_line_error(
        full,
        f"error: Trainer: the disk is full (No space left on device writing {trainer.resolve()}/",
        "): free space there and run again; what finished is cached",
    )
    states = node_states(work)
    assert [states[n] for n in UPSTREAM] == ["COMPLETE"] * len(UPSTREAM) and states["Trainer"] == "FAILED"
    nothing_half_written(work)

    resize(trainer, "64m")
    mount(serving, "16k")  # the model fits in the pipeline, not where it is pushed
    full = keel("run", spec, "--workdir", work)
    one_line_error(full, f"error: Pusher: the disk is full (No space left on device writing {serving.resolve()}/")
    states = node_states(work)
    assert [states[n] for n in UPSTREAM] == ["CACHED"] * len(UPSTREAM)
    assert states["Trainer"] == states["Evaluator"] == "COMPLETE" and states["Pusher"] == "FAILED"
    nothing_half_written(work)
    assert versions(serving) == []  # nothing a server would load

    resize(serving, "64m")
    done = keel("run", spec, "--workdir", work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "recovered: removed 1 partial version(s) an interrupted push left" in done.stdout
    states = node_states(work)
    assert [states[n] for n in UPSTREAM] == ["CACHED"] * len(UPSTREAM)
    assert states["Trainer"] == states["Evaluator"] == "CACHED" and states["Pusher"] == "COMPLETE"
    nothing_half_written(work)
    assert len(versions(serving)) == 1
