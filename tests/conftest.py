"""Shared fixtures: real pipeline runs on real data, shared across tests because they are slow."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TABULAR = REPO / "models" / "tabular.py"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def penguin_spec(directory: Path, steps: int = 200, source: str = "builtin:penguins", name: str = "penguin",
                 threshold: float = 0.9, extra: str = "", hparams: str = "{ hidden = [32, 16], learning_rate = 0.01 }",
                 model_extra: str = "", eval_steps: int = 10, max_regression: float = 0.05) -> Path:
    """Writes a penguin spec into `directory` and returns its path.

    XLA is fixed off: the automatic choice times both modes on every Trainer run, which
    tests/test_training.py covers; here it would only add seconds.
    """
    path = directory / f"{name}.toml"
    path.write_text(f"""
[pipeline]
name = "{name}"

[data]
source = "{source}"
label = "species"

[features]
numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
categorical = ["island", "sex"]

[model]
module = "{TABULAR}"
hparams = {hparams}
{model_extra}

[train]
steps = {steps}
eval_steps = {eval_steps}
batch_size = 32
jit_compile = false

[eval]
threshold = {threshold}
max_regression = {max_regression}
{extra}
""")
    return path


def keel(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Runs the real `keel` command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "keel.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


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


def pushed_versions(workdir: Path, name: str = "penguin") -> list[str]:
    """The version directories the Pusher wrote, oldest first."""
    return sorted(str(p) for p in (workdir / "serving" / name).glob("*"))


def node_states(workdir: Path) -> dict[str, str]:
    """Node id -> ML Metadata execution state of the latest pipeline run in `workdir`."""
    from keel.mlmd import store as metadata

    store = metadata.open_store(workdir)
    run = metadata.latest_run_context(store)
    return {n.node_id: n.state for n in metadata.run_executions(store, run)}


@pytest.fixture(scope="session")
def penguin_runs(tmp_path_factory) -> PenguinRuns:
    return PenguinRuns(tmp_path_factory.mktemp("penguin"))
