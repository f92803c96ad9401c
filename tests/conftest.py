"""Shared fixtures: real pipeline runs on real data, shared across tests because they are slow.

Plain helpers are in helpers.py; tests use these fixtures by name.
"""

from pathlib import Path

import pytest

from helpers import keel, node_states, penguin_mass_data, penguin_spec, pushed_versions, write_spec


class PenguinRuns:
    """Runs of one penguin workdir: cold, identical again, only train.steps changed, an unmeetable bar."""

    def __init__(self, root: Path):
        self.workdir = root / "work"
        self.spec = penguin_spec(root)
        self.cold = keel("run", self.spec, "--workdir", self.workdir)
        self.cold_states = node_states(self.workdir)
        self.again = keel("run", self.spec, "--workdir", self.workdir)
        self.again_states = node_states(self.workdir)
        self.versions_after_again = pushed_versions(self.workdir)
        penguin_spec(root, steps=250)
        self.steps_changed = keel("run", self.spec, "--workdir", self.workdir)
        self.steps_changed_states = node_states(self.workdir)
        self.versions_after_steps_changed = pushed_versions(self.workdir)
        self.unblessed = keel("run", penguin_spec(root, steps=2, threshold=1.0), "--workdir", self.workdir)


@pytest.fixture(scope="session")
def penguin_runs(tmp_path_factory) -> PenguinRuns:
    """The penguin workdir's four runs, made once per session."""
    return PenguinRuns(tmp_path_factory.mktemp("penguin"))


class MassRun:
    """One regression run: penguin body mass from the numeric measurements (LiteRT-exportable), blessed and pushed."""

    def __init__(self, root: Path):
        self.workdir = root / "work"
        self.spec = write_spec(root / "penguin_mass.toml", penguin_mass_data(numeric_only=True))
        self.run = keel("run", self.spec, "--workdir", self.workdir)
        assert self.run.returncode == 0, self.run.stdout + self.run.stderr
        self.versions = pushed_versions(self.workdir, "penguin_mass")
        assert self.versions, self.run.stdout


@pytest.fixture(scope="session")
def mass_run(tmp_path_factory) -> MassRun:
    """A pushed regression model (see MassRun), made once per session."""
    return MassRun(tmp_path_factory.mktemp("penguin_mass"))
