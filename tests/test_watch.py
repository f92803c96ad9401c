"""`keel run --watch`: a real watcher subprocess on a real workdir, its files edited under it.

One watcher goes through: the cold run (the XLA probe measured and cached), a learning-rate edit of
the spec (only Trainer onwards re-run, the probe reused), an edit of the model file (the Trainer
re-runs with the new code, a new probe measurement), a spec that does not validate (one error line,
no run, the watch goes on), the fix (a run), and a Ctrl-C during that run (it finishes, exit 0).
A second watcher on the same workdir runs fully cached and stops on Ctrl-C between runs.
"""

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO, node_states, penguin_spec

UPSTREAM = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate", "Transform"]
WAITING = "watch: waiting for changes"
TIMEOUT = 900  # seconds for one run on a loaded machine


class Watcher:
    """A `keel run --watch` subprocess whose stdout lines are collected by a thread."""

    def __init__(self, spec: Path, workdir: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keel.cli", "run", "--watch", str(spec), "--workdir", str(workdir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def until(self, text: str, timeout: float = TIMEOUT) -> list[str]:
        """The lines up to and including the next one that contains `text`."""
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the watcher exited before {text!r}:\n" + "\n".join(self.lines[-60:]))
            self.lines.append(line)
            seen.append(line)
            if text in line:
                return seen
        raise AssertionError(f"no {text!r} within {timeout}s:\n" + "\n".join(self.lines[-60:]))

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def latest_training(workdir: Path) -> dict:
    """training.json of the newest Trainer run in `workdir`."""
    newest = max(
        (workdir / "pipeline" / "Trainer" / "model_run").glob("*/training.json"), key=lambda p: int(p.parent.name)
    )
    return json.loads(newest.read_text())


def run_count(workdir: Path) -> int:
    from keel.mlmd import store as metadata

    return len(metadata.runs(metadata.open_store(workdir)))


def write(root: Path, model: Path, **settings) -> Path:
    return penguin_spec(
        root, {"model.module": str(model), "train.jit_compile": "auto"}, eval_steps=2, threshold=0.0, **settings
    )


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch")
    model = root / "model.py"
    model.write_text((REPO / "models" / "tabular.py").read_text())
    spec = write(root, model, steps=20)
    watcher = Watcher(spec, root / "work")
    yield root, model, spec, watcher
    watcher.stop()


def test_the_first_run_measures_and_caches_the_xla_probe(watched):
    root, _, _, watcher = watched
    shown = watcher.until(WAITING)
    assert shown[0].startswith("watch: ") and "Ctrl-C stops" in shown[0]
    assert any(line.startswith("watch: ran CsvExampleGen, ") and "; 0 cached; " in line for line in shown)
    assert any("(the first run of this watch), no blessed baseline to compare with" in line for line in shown)
    jit = latest_training(root / "work")["jit"]
    assert jit["probe_reused"] is False and Path(jit["probe_cache"]).is_file()
    assert Path(jit["probe_cache"]).parent == (root / "work" / "cache" / "xla_probe").resolve()


def test_a_spec_edit_re_runs_from_the_trainer_and_reuses_the_probe(watched):
    root, model, _, watcher = watched
    write(root, model, steps=20, hparams={"hidden": [32, 16], "learning_rate": 0.02})
    shown = watcher.until(WAITING)
    assert any(re.match(r"watch: changed: .*penguin\.toml \(modified\)$", line) for line in shown)
    assert "  spec: model.hparams: {'hidden': [32, 16], 'learning_rate': 0.01} -> " in "\n".join(shown)
    states = node_states(root / "work")
    assert [states[n] for n in UPSTREAM] == ["CACHED"] * len(UPSTREAM)
    assert states["Trainer"] == states["Evaluator"] == "COMPLETE"
    assert any(line.startswith("watch: ran Trainer, Evaluator, Pusher; 6 cached; ") for line in shown)
    assert any(" vs the previous run (" in line and " vs the blessed baseline (" in line for line in shown)
    assert latest_training(root / "work")["jit"]["probe_reused"] is True  # the learning rate is not in the key


def test_a_model_file_edit_trains_the_new_code_and_measures_the_probe_again(watched):
    root, model, _, watcher = watched
    model.write_text(model.read_text().replace('activation="relu"', 'activation="tanh"'))
    shown = watcher.until(WAITING)
    text = "\n".join(shown)
    assert re.search(r"watch: changed: .*model\.py \(modified\)", text)
    assert '  code: -        x = keras.layers.Dense(units, activation="relu")(x)' in text
    assert '  code: +        x = keras.layers.Dense(units, activation="tanh")(x)' in text
    states = node_states(root / "work")
    assert states["Transform"] == "CACHED" and states["Trainer"] == "COMPLETE"  # no preprocessing_fn in the module
    jit = latest_training(root / "work")["jit"]
    assert jit["probe_reused"] is False  # new code, new key
    assert len(list((root / "work" / "cache" / "xla_probe").glob("*.json"))) == 2


def test_an_invalid_spec_is_one_error_line_and_the_watch_goes_on_until_it_is_fixed(watched):
    root, model, spec, watcher = watched
    runs_before = run_count(root / "work")
    spec.write_text(spec.read_text().replace("steps = 20", 'steps = "many"'))
    shown = watcher.until("waiting for a fix")
    errors = [line for line in shown if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: penguin.toml: train.steps: got 'many'; ")
    assert run_count(root / "work") == runs_before
    write(root, model, steps=25, hparams={"hidden": [32, 16], "learning_rate": 0.02})
    watcher.until("[ 7/10] Trainer")  # the run has started: Ctrl-C lets it finish, then stops
    watcher.process.send_signal(signal.SIGINT)
    shown = watcher.until("watch: stopped")
    assert "watch: Ctrl-C: stopping after this run (Ctrl-C again aborts it)" in shown, "\n".join(shown)
    assert any(line.startswith("watch: ran Trainer, Evaluator, Pusher; 6 cached; ") for line in shown)
    assert "  spec: train.steps: 20 -> 25" in "\n".join(watcher.lines)
    assert watcher.process.wait(timeout=60) == 0
    assert run_count(root / "work") == runs_before + 1
    assert latest_training(root / "work")["jit"]["probe_reused"] is True  # the same code, other steps


def test_ctrl_c_between_runs_stops_cleanly(watched):
    root, _, spec, first = watched
    assert first.process.wait(timeout=60) == 0  # the watcher above has stopped: the workdir is free
    watcher = Watcher(spec, root / "work")
    try:
        shown = watcher.until(WAITING)
        assert any(line.startswith("watch: ran nothing; ") for line in shown), "\n".join(shown)  # all cached
        watcher.process.send_signal(signal.SIGINT)
        assert watcher.until("watch: stopped")[-1] == "watch: stopped"
        assert watcher.process.wait(timeout=60) == 0
    finally:
        watcher.stop()
