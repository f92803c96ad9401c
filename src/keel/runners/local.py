"""Runs a spec's pipeline on this machine: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner.

Console output is progress only (one line as each component starts and ends, the Trainer's
steps); TFX's, Beam's and TensorFlow's logs go to `WORKDIR/logs/run-TIMESTAMP.log`.
"""

import contextlib
import fcntl
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from absl import logging as absl_logging

from keel.core.errors import KeelError, find_keel_error
from keel.core.modules import load_module, require_function
from keel.core.spec import Spec


class _Progress(logging.Handler):
    """Turns LocalDagRunner's log lines into one console line per component start and end."""

    def __init__(self, node_ids: list[str], out):
        super().__init__(logging.INFO)
        self.node_ids, self.out = node_ids, out
        self.started: dict[str, tuple[float, float]] = {}  # node id -> (wall, process CPU) at its start
        self.cpu_seconds: dict[str, float] = {}  # of every thread of this process: Beam's in-memory runner too
        self.cached: set[str] = set()
        self.current = None

    def _label(self, node_id: str) -> str:
        index = self.node_ids.index(node_id) + 1 if node_id in self.node_ids else 0
        return f"  [{index:>2}/{len(self.node_ids)}] {node_id:<22}"

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Component %s is running.":
            self.current = record.args[0]
            self.started[self.current] = (time.monotonic(), time.process_time())
            print(f"{self._label(self.current)} running", file=self.out, flush=True)
        elif record.msg == "A cached execution %d is used." and self.current:
            self.cached.add(self.current)
        elif record.msg == "Component %s is finished.":
            node = record.args[0]
            wall, cpu = self.started.get(node, (time.monotonic(), time.process_time()))
            took = time.monotonic() - wall
            self.cpu_seconds[node] = round(time.process_time() - cpu, 3)
            how = "cached" if node in self.cached else f"done in {took:.1f}s"
            print(f"{self._label(node)} {how}", file=self.out, flush=True)


@contextlib.contextmanager
def _workdir_lock(workdir: Path):
    """One run per workdir: SQLite ML Metadata tolerates one writer."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise KeelError(f"{workdir} is in use by another keel run (pid {holder}); "
                            "wait for it to finish or use another --workdir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _captured_logs(log_file: Path, progress: logging.Handler):
    """Sends every library log line to `log_file` and only progress lines to the console."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(file_handler)
    root.addHandler(progress)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # Through absl's verbosity flag, not Logger.setLevel: TensorFlow saves and restores that flag
    # around SavedModel traversal, which would otherwise reset the level to WARNING mid-run.
    absl_saved = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    # TensorFlow's logger writes to the console itself; point it at the log file instead.
    tf_logger = logging.getLogger("tensorflow")
    tf_saved = (list(tf_logger.handlers), tf_logger.propagate)
    for h in tf_saved[0]:
        tf_logger.removeHandler(h)
    tf_logger.propagate = False
    tf_logger.addHandler(file_handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        logging.captureWarnings(False)
        absl_logging.set_verbosity(absl_saved)
        tf_logger.removeHandler(file_handler)
        for h in tf_saved[0]:
            tf_logger.addHandler(h)
        tf_logger.propagate = tf_saved[1]
        root.removeHandler(file_handler)
        root.removeHandler(progress)
        file_handler.close()
        root.setLevel(saved[0])
        for h in saved[1]:
            root.addHandler(h)


def run_pipeline(spec: Spec, workdir: Path | None = None, out=None, span: int | None = None):
    """Runs the spec's pipeline in `workdir` (default `.keel/<name>` beside the spec).

    `span` picks the data version of a `{SPAN}` source (default: the latest span).

    Returns the RunSummary. Raises KeelError (user-facing, one line) for bad input or data; other
    exceptions are bugs and carry the log file's path in their message.
    """
    from keel.executors.training.strategy import check_accelerator

    check_accelerator(spec.train.accelerator, spec.train.tpu)  # before the pipeline, not at its Trainer
    module_path = spec.resolve(spec.model.module)
    require_function(load_module(module_path), "build_model", module_path)  # import errors too, up front
    from tfx import v1 as tfx

    from keel.data.sources import prepare_source
    from keel.mlmd.store import close_interrupted, latest_run_context, open_store, set_custom, store_path
    from keel.core.modules import code_provenance
    from keel.pipeline.factory import create_pipeline
    from keel.runners.summary import collect_summary

    out = out or sys.stdout
    workdir = Path(workdir or spec.default_workdir()).resolve()
    with _workdir_lock(workdir):
        source, provenance = prepare_source(spec, workdir, span)
        origin = provenance.get("origin")
        shown = f"{origin['rows']} rows, " if origin else ""
        shown += f"span {source.span}, " if source.has_span else ""
        print(f"keel run {spec.pipeline.name}: workdir {workdir}", file=out)
        print(f"  data: {spec.data.source} -> {source.input_base} ({shown}{len(provenance['files'])} file(s))",
              file=out, flush=True)
        if store_path(workdir).exists():
            closed = close_interrupted(open_store(workdir))
            if closed:
                print(f"  recovered: an earlier run was killed during {', '.join(closed)}; its unfinished "
                      "executions are marked CANCELED in ML Metadata and will run again", file=out, flush=True)
        pipeline = create_pipeline(spec, source, workdir)
        node_ids = [c.id for c in pipeline.components]
        (workdir / "logs").mkdir(exist_ok=True)
        log_file = workdir / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
        started = time.time()
        failure = None
        progress = _Progress(node_ids, out)
        with _captured_logs(log_file, progress):
            try:
                tfx.orchestration.LocalDagRunner().run(pipeline)
            except Exception as e:  # classified below: the user's problem, or a bug
                failure = e
            store = open_store(workdir)
            run = latest_run_context(store)
            if run is not None and run.create_time_since_epoch >= started * 1000 - 1000:
                set_custom(store, run, {"keel_spec": json.dumps(spec.resolved(), sort_keys=True),
                                        "keel_spec_path": str(spec.path), "keel_spec_sha256": spec.sha256(),
                                        "keel_data": json.dumps(provenance, sort_keys=True),
                                        "keel_code": json.dumps(code_provenance(spec.resolve(spec.model.module)),
                                                                sort_keys=True),
                                        "keel_cpu_seconds": json.dumps(progress.cpu_seconds, sort_keys=True)})
            else:
                run = None
            summary = collect_summary(store, run, spec.pipeline.name, node_ids, workdir, time.time() - started,
                                      log_file)
        if failure is not None:
            print(summary.render(), file=out, flush=True)
            keel_error = find_keel_error(failure)
            if keel_error is None:
                raise RuntimeError(f"keel run failed unexpectedly: {failure.__class__.__name__}: {failure}; "
                                   f"full log: {log_file}") from failure
            raise keel_error
        return summary
