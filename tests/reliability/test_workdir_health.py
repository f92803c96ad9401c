"""A damaged workdir: a locked or corrupt ML Metadata store, missing artifacts, leftover versions.

One penguin workdir, run once and pushed, serves every case; each case damages it, asserts what
`keel doctor` (and `keel run`) say, and repairs it, so the next case starts from a healthy workdir.
"""

import json
import shutil
import sqlite3

import pytest

from checks import one_line_error
from helpers import keel, penguin_spec, pushed_versions


class Workdir:
    def __init__(self, root):
        self.workdir = root / "work"
        self.spec = penguin_spec(root, steps=50, threshold=0.0)
        self.run = keel("run", self.spec, "--workdir", self.workdir)
        assert self.run.returncode == 0, self.run.stdout + self.run.stderr
        (self.version,) = pushed_versions(self.workdir)
        self.store = self.workdir / "metadata.sqlite"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    return Workdir(tmp_path_factory.mktemp("health"))


def doctor(pushed, *flags):
    return keel("doctor", "--workdir", pushed.workdir, *flags)


def test_a_healthy_workdir_passes(pushed):
    result = doctor(pushed)
    assert result.returncode == 0, result.stderr
    assert "healthy" in result.stdout and "1 pushed versions" in result.stdout
    report = json.loads(doctor(pushed, "--json").stdout)
    assert report["healthy"] and report["problems"] == [] and report["pushed_versions"] == 1


def test_a_locked_store_waits_a_bounded_time_then_fails_in_one_line(pushed, monkeypatch):
    monkeypatch.setenv("KEEL_METADATA_LOCK_SECONDS", "2")
    holder = sqlite3.connect(pushed.store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for result in (keel("run", pushed.spec, "--workdir", pushed.workdir), doctor(pushed)):
            one_line_error(
                result,
                f"{pushed.store}: the ML Metadata store is locked by another process (waited 2s)",
                "then run again",
            )
    finally:
        holder.rollback()
        holder.close()
    assert doctor(pushed).returncode == 0


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_a_damaged_store_is_one_line_at_start_with_the_recovery(pushed, damage):
    saved = pushed.store.with_name("saved.sqlite")
    shutil.copy2(pushed.store, saved)
    data = saved.read_bytes()
    pushed.store.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x00garbage" * 512}[damage]
    )
    try:
        for command in (["run", pushed.spec, "--workdir", pushed.workdir], ["doctor", "--workdir", pushed.workdir]):
            line = one_line_error(keel(*command), f"{pushed.store}: the ML Metadata store is")
            assert f"mv {pushed.store} {pushed.store}.damaged" in line
    finally:
        shutil.move(saved, pushed.store)
    assert doctor(pushed).returncode == 0


def test_a_live_artifact_missing_on_disk_is_reported(pushed):
    (graph,) = (pushed.workdir / "pipeline" / "Transform" / "transform_graph").iterdir()
    aside = graph.with_name("aside")
    graph.rename(aside)
    try:
        result = doctor(pushed)
        one_line_error(result, f"is LIVE in ML Metadata but {graph} does not exist")
    finally:
        aside.rename(graph)


def test_a_complete_version_ml_metadata_does_not_list_is_reported(pushed):
    stray = pushed.workdir / "serving" / "penguin" / "9999999999"
    shutil.copytree(pushed.version, stray)
    try:
        one_line_error(doctor(pushed), f"{stray}: a complete version that ML Metadata does not list as pushed")
    finally:
        shutil.rmtree(stray)


def test_a_partial_version_is_reported_and_the_next_run_removes_it(pushed):
    # What a push killed mid-copy leaves: the variables, but not saved_model.pb (TFX copies it last).
    partial = pushed.workdir / "serving" / "penguin" / "9999999999"
    shutil.copytree(pushed.version, partial, ignore=shutil.ignore_patterns("saved_model.pb"))
    one_line_error(doctor(pushed), f"{partial}: a partial version (no saved_model.pb)")
    result = keel("run", pushed.spec, "--workdir", pushed.workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"recovered: removed 1 partial version(s) an interrupted push left: {partial}" in result.stdout
    assert not partial.exists()
    assert doctor(pushed).returncode == 0
