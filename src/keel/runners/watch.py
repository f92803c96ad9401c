"""`keel run --watch SPEC`: one warm process that re-runs the pipeline whenever its inputs change.

It runs the pipeline once, then polls the spec file, the model module, the schema file and the data
files every second (stat first, sha256 only of what the stat says changed) and runs again after a
change; TFX's cache decides which components execute. Imports (TFX, TFT, TFMA, Keras) are paid once.
After each run it prints what changed (the resolved spec field by field, the files and a diff of the
model code), what ran, and the judged metric against the previous run and the blessed baseline.

A spec that does not validate, or a run that fails on bad input, prints its one-line error and the
watch goes on. Ctrl-C between runs stops (exit 0); during a run the first Ctrl-C lets the run finish
and then stops, a second aborts it and marks its unfinished executions CANCELED in ML Metadata.
The user module is loaded by content hash (keel.core.modules.load_module), so an edit is read anew.
"""

import dataclasses
import gc
import glob
import io
import os
import signal
import sys
import time
from pathlib import Path

from keel.core.errors import KeelError, SpecError
from keel.runners import changes

POLL_SECONDS = 1.0
SETTLE_SECONDS = 0.3  # an editor's save can take several writes: wait until the files are still
STOPPED, ABORTED = "stopped", "aborted"


@dataclasses.dataclass
class _State:
    """What the previous run saw, for the next run's comparisons."""

    spec: object = None  # the last Spec that validated
    resolved: dict | None = None
    metric: float | None = None
    texts: dict[str, str] = dataclasses.field(default_factory=dict)  # model module path -> text at its last run


class _StopAfterRun:
    """While a run executes: the first Ctrl-C asks to stop after it, a second one aborts it."""

    def __init__(self, out):
        self.out, self.requested = out, False

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        line = "watch: Ctrl-C: stopping after this run (Ctrl-C again aborts it)\n"
        try:  # straight to the file descriptor: the handler may run while a print holds the stream's buffer
            os.write(self.out.fileno(), line.encode())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self.out.write(line)

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False


def watched_paths(spec_path: Path, spec) -> list[Path]:
    """The files a run depends on: the spec, and with a valid spec its model module, schema and data files."""
    paths = [spec_path]
    if spec is None:
        return paths
    paths.append(spec.resolve(spec.model.module))
    if spec.data.schema_file:
        paths.append(spec.resolve(spec.data.schema_file))
    source = spec.data.source
    if not source.startswith("builtin:"):
        pattern = spec.resolve(source)
        pattern = pattern / "*" if pattern.is_dir() else pattern
        paths.extend(Path(p) for p in sorted(glob.glob(str(pattern).replace("{SPAN}", "*"))) if Path(p).is_file())
    return paths


def _shown(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


class Watcher:
    """The watch loop over one spec; `run()` returns STOPPED or ABORTED."""

    def __init__(self, spec_path, overrides: dict, workdir=None, span: int | None = None, out=None):
        self.spec_path = Path(spec_path).resolve()
        self.overrides, self.workdir, self.span = overrides, workdir, span
        self.out = out or sys.stdout
        self.state = _State()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _fingerprints(self, previous=None) -> dict:
        return changes.fingerprints(watched_paths(self.spec_path, self.state.spec), previous)

    def _load(self):
        from keel.core.spec import load_spec

        try:
            return load_spec(self.spec_path, overrides=self.overrides)
        except SpecError as e:
            for line in str(e).splitlines():
                self.say(f"error: {line}")
            return None

    def _report_changes(self, spec, changed: list[tuple[str, str]]) -> None:
        from keel.registry.diff import change_text, spec_changes

        if changed:
            self.say("watch: changed: " + ", ".join(f"{_shown(p)} ({how})" for p, how in changed))
        if self.state.resolved is not None:
            fields = spec_changes(self.state.resolved, spec.resolved())
            for change in fields:
                self.say(f"  spec: {change_text(change)}")
            if not fields and any(p == str(self.spec_path) for p, _ in changed):
                self.say("  spec: no resolved field changed")
        module = str(spec.resolve(spec.model.module))
        old = self.state.texts.get(module)
        if old is not None and any(p == module for p, _ in changed):
            for line in changes.code_diff(old, Path(module).read_text(errors="replace"), Path(module).name):
                self.say(f"  code: {line}")

    def _run_once(self, changed: list[tuple[str, str]]) -> str | None:
        """One pipeline run (or the error that kept it from running); STOPPED/ABORTED if Ctrl-C asked."""
        from keel.core.workdirs import resolve_workdir
        from keel.mlmd.store import close_interrupted, open_store, store_path
        from keel.runners.local import run_pipeline

        spec = self._load()
        if spec is None:
            if changed:
                self.say("watch: changed: " + ", ".join(f"{_shown(p)} ({how})" for p, how in changed))
            self.say("watch: the spec does not validate; waiting for a fix")
            return None
        self._report_changes(spec, changed)
        workdir = resolve_workdir(self.workdir, spec)
        if self.state.spec is not None:
            import keras

            keras.backend.clear_session()  # each run's models start from fresh layer names, as in a new process
            gc.collect()
        self.state.spec = spec
        module = str(spec.resolve(spec.model.module))
        module_text = Path(module).read_text(errors="replace")
        started = time.monotonic()
        with _StopAfterRun(self.out) as interrupts:
            try:
                summary = run_pipeline(spec, workdir=workdir, span=self.span, out=self.out)
            except KeyboardInterrupt:
                closed = close_interrupted(open_store(workdir)) if store_path(workdir).exists() else []
                where = f" during {', '.join(closed)}" if closed else ""
                self.say(
                    f"watch: aborted the run{where}; unfinished executions are marked CANCELED and run again next time"
                )
                return ABORTED
            except KeelError as e:
                for line in str(e).splitlines():
                    self.say(f"error: {line}")
                self.say("watch: the run failed; waiting for a change")
                return STOPPED if interrupts.requested else None
            except RuntimeError as e:  # a bug in keel: its message names the run's log file
                self.say(f"error: {e}")
                self.say("watch: the run failed; waiting for a change")
                return STOPPED if interrupts.requested else None
        self.say(summary.render())
        self.say(f"watch: {changes.rerun_line(summary.components)}; {time.monotonic() - started:.1f}s")
        name = spec.metric.name
        delta = changes.metric_delta(
            name, summary.metrics.get(name), self.state.metric, summary.metrics.get(f"{name}_diff")
        )
        if delta:
            self.say(f"watch: {delta}")
        self.state.resolved, self.state.texts[module] = spec.resolved(), module_text
        if summary.metrics.get(name) is not None:
            self.state.metric = summary.metrics[name]
        return STOPPED if interrupts.requested else None

    def _wait_for_change(self, seen: dict) -> tuple[dict, list[tuple[str, str]]]:
        """Polls until a watched file's content changes; returns the new fingerprints and the changes."""
        while True:
            time.sleep(POLL_SECONDS)
            now = self._fingerprints(seen)
            if not changes.changed_files(seen, now):
                seen = now
                continue
            while True:  # settle: the save may still be in progress
                time.sleep(SETTLE_SECONDS)
                later = self._fingerprints(now)
                if not changes.changed_files(now, later):
                    return later, changes.changed_files(seen, later)
                now = later

    def run(self) -> str:
        """Runs, then re-runs on every change until Ctrl-C; returns STOPPED or ABORTED."""
        self.say(f"watch: {_shown(str(self.spec_path))}: running, then again on each change (Ctrl-C stops)")
        # A shell starts background jobs with SIGINT ignored, and Python then leaves it ignored: Ctrl-C
        # (or `kill -INT`) between runs would do nothing. The watch promises that Ctrl-C stops it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            seen = self._fingerprints()
            outcome = self._run_once([])
            while outcome is None:
                # Files newly watched (a valid spec names its module and data) join as they are now;
                # the others keep their state from before the run, so an edit during it is not missed.
                seen = {p: seen.get(p, now) for p, now in self._fingerprints(seen).items()}
                self.say(f"watch: waiting for changes to {len(seen)} file(s)")
                seen, changed = self._wait_for_change(seen)
                outcome = self._run_once(changed)
        except KeyboardInterrupt:
            outcome = STOPPED
        if outcome == STOPPED:
            self.say("watch: stopped")
        return outcome
