"""What `keel run` prints while it runs: one Reporter for every console line, fed by a log handler.

LocalDagRunner logs "Component X is running." and "... is finished." for each node; the Trainer's
run_fn prints its own step lines. ProgressHandler turns the former into one line per start and
end and measures each component's CPU time.
"""

import json
import logging
import time

from keel.data.sources import DataSource


class Reporter:
    """The console lines of one run: where it runs, its data, a recovery, each component's progress."""

    def __init__(self, out):
        self.out = out

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, name: str, workdir) -> None:
        self._line(f"keel run {name}: workdir {workdir}")

    def data(self, written: str, source: DataSource, provenance: dict) -> None:
        """`written` is the spec's data.source; `provenance` what keel.data.sources.prepare_source recorded."""
        origin = provenance.get("origin")
        if "records" in provenance:  # a folder of pictures, written as one TFRecord file
            self._line(
                f"  data: {written} -> {provenance['records']['path']} ({len(provenance['files'])} pictures as tf.Example)"
            )
            return
        shown = f"{origin['rows']} rows, " if origin else ""
        shown += f"span {source.span}, " if source.has_span else ""
        self._line(f"  data: {written} -> {source.input_base} ({shown}{len(provenance['files'])} file(s))")

    def overrides(self, overrides: dict) -> None:
        """The --set overrides this run applies on top of the spec file."""
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
        self._line(f"  overrides: {shown} (--set; recorded with the run)")

    def task(self, task, metric) -> None:
        """The task the run trains for and why (keel.data.task.ResolvedTask), and the metric that judges it."""
        self._line(f"  task: {task.task} ({task.reason}); judged by {metric.name} ({metric.direction})")

    def recovered(self, closed: list[str]) -> None:
        self._line(
            f"  recovered: an earlier run was killed during {', '.join(closed)}; its unfinished "
            "executions are marked CANCELED in ML Metadata and will run again"
        )

    def removed_partial(self, removed: list) -> None:
        self._line(
            f"  recovered: removed {len(removed)} partial version(s) an interrupted push left: "
            + ", ".join(str(p) for p in removed)
        )

    def component(self, index: int, total: int, node_id: str, how: str) -> None:
        self._line(f"  [{index:>2}/{total}] {node_id:<22} {how}")

    def summary(self, text: str) -> None:
        self._line(text)


class ProgressHandler(logging.Handler):
    """Turns LocalDagRunner's log lines into a Reporter line per component start and end."""

    def __init__(self, node_ids: list[str], reporter: Reporter):
        super().__init__(logging.INFO)
        self.node_ids, self.reporter = node_ids, reporter
        self.started: dict[str, tuple[float, float]] = {}  # node id -> (wall, process CPU) at its start
        self.cpu_seconds: dict[str, float] = {}  # of every thread of this process: Beam's in-memory runner too
        self.cached: set[str] = set()
        self.current = None

    def _report(self, node_id: str, how: str) -> None:
        index = self.node_ids.index(node_id) + 1 if node_id in self.node_ids else 0
        self.reporter.component(index, len(self.node_ids), node_id, how)

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Component %s is running.":
            self.current = record.args[0]
            self.started[self.current] = (time.monotonic(), time.process_time())
            self._report(self.current, "running")
        elif record.msg == "A cached execution %d is used." and self.current:
            self.cached.add(self.current)
        elif record.msg == "Component %s is finished.":
            node = record.args[0]
            wall, cpu = self.started.get(node, (time.monotonic(), time.process_time()))
            took = time.monotonic() - wall
            self.cpu_seconds[node] = round(time.process_time() - cpu, 3)
            self._report(node, "cached" if node in self.cached else f"done in {took:.1f}s")
