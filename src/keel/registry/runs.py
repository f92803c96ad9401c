"""`keel runs`: every pipeline run of a workdir, oldest first, read from ML Metadata.

Per run: when it started and how long it took, which nodes ran and which were cached, what changed in
the resolved spec since the previous run (`keel_spec` on each pipeline_run context; the `--set`
overrides are `keel_spec_overrides`), the hparams, the Evaluator's metrics, the blessing and the
pushed version.
"""

import dataclasses
import json
from pathlib import Path

from keel.core.tasks import METRICS
from keel.mlmd import store as metadata
from keel.mlmd import text
from keel.mlmd.evaluation import read as read_evaluation
from keel.pipeline.nodes import EVALUATOR, PUSHER
from keel.registry.diff import change_text, spec_changes

SECONDS = "keel_seconds"  # the run's wall time as `keel run` measured it, recorded on its pipeline_run context


@dataclasses.dataclass(frozen=True)
class Run:
    """One pipeline run. `spec_changes` are against the previous run, in `keel diff`'s form (a: previous, b: this)."""

    index: int
    run_id: str
    started_ms: int
    seconds: float | None
    status: str  # complete | failed | unfinished (still running, or killed)
    ran: list[str]
    cached: list[str]
    failed: list[str]
    spec_changes: list[dict]
    overrides: dict
    hparams: dict
    metrics: dict[str, float]
    blessed: bool | None
    pushed_version: str | None

    def to_dict(self) -> dict:
        """The run as plain JSON-ready data (one element of what `keel runs --json` prints)."""
        return dataclasses.asdict(self)


def _json(context, key: str, default):
    value = metadata.custom(context, key)
    return json.loads(value) if value else default


def _seconds(context, executions: list[metadata.NodeExecution]) -> float | None:
    recorded = metadata.custom(context, SECONDS)
    if recorded:
        return float(recorded)
    if not executions:
        return None  # runs recorded before keel kept its wall time: the span of its executions
    first = min(n.execution.create_time_since_epoch for n in executions)
    last = max(n.execution.last_update_time_since_epoch for n in executions)
    return (last - first) / 1000.0


def _run(store, index: int, context, previous_spec: dict | None) -> Run:
    executions = [n for n in metadata.run_executions(store, context) if not n.is_resolver]
    by_state: dict[str, list[str]] = {}
    for n in executions:
        by_state.setdefault(n.state, []).append(n.node_id)
    failed = by_state.get("FAILED", [])
    unfinished = by_state.get("RUNNING", []) + by_state.get("NEW", []) + by_state.get("CANCELED", [])
    spec = _json(context, "keel_spec", {})
    nodes = {n.node_id: n.execution for n in executions}
    judged = read_evaluation(store, nodes[EVALUATOR]) if EVALUATOR in nodes else None
    pushed = metadata.output_artifact(store, nodes[PUSHER].id, "pushed_model") if PUSHER in nodes else None
    return Run(
        index=index,
        run_id=context.name,
        started_ms=context.create_time_since_epoch,
        seconds=_seconds(context, executions),
        status="failed" if failed else "unfinished" if unfinished else "complete",
        ran=by_state.get("COMPLETE", []),
        cached=by_state.get("CACHED", []),
        failed=failed,
        spec_changes=spec_changes(previous_spec, spec) if previous_spec and spec else [],
        overrides=_json(context, "keel_spec_overrides", {}),
        hparams=spec.get("model", {}).get("hparams", {}),
        metrics=judged.values if judged else {},
        blessed=judged.blessed if judged else None,
        pushed_version=metadata.custom(pushed, "pushed_version")
        if pushed is not None and metadata.custom(pushed, "pushed", 0)
        else None,
    )


def list_runs(workdir: Path) -> list[Run]:
    """Every pipeline run in `workdir`, oldest first; none when no run has started there."""
    if not metadata.store_path(workdir).exists():
        return []
    store = metadata.open_store(workdir)
    found, previous = [], None
    for index, context in enumerate(metadata.runs(store), start=1):
        found.append(_run(store, index, context, previous))
        previous = _json(context, "keel_spec", {}) or previous
    return found


# Text


def _ran(run: Run) -> str:
    if not run.cached and run.ran:
        return f"all {len(run.ran)}"
    return ",".join(run.ran) or "none"


def _changes(run: Run) -> str:
    shown = "; ".join(change_text(c) for c in run.spec_changes)
    shown = shown or ("(first run)" if run.index == 1 else "(spec unchanged)")
    if run.overrides:
        shown += " (--set " + ", ".join(f"{k}={json.dumps(v)}" for k, v in run.overrides.items()) + ")"
    return shown


def render(runs: list[Run], workdir: Path | None = None) -> str:
    """The runs as a table, oldest first: one row per run."""
    if not runs:
        where = f" in {workdir}" if workdir else ""
        return f"no runs yet{where} (keel run SPEC starts one)"
    names = sorted({k for r in runs for k in r.metrics}, key=lambda k: (k not in METRICS, k))
    blessed = {True: "yes", False: "no", None: text.MISSING}
    header = ["#", "run", "started (UTC)", "seconds", "status", "ran", "cached", *names, "blessed", "pushed"]
    header += ["hparams", "changes vs the previous run"]
    rows = [
        [
            str(r.index),
            r.run_id,
            text.utc(r.started_ms),
            f"{r.seconds:.1f}" if r.seconds is not None else text.MISSING,
            r.status,
            _ran(r),
            str(len(r.cached)),
            *(text.number(r.metrics.get(n)) for n in names),
            blessed[r.blessed],
            r.pushed_version or text.MISSING,
            json.dumps(r.hparams, sort_keys=True, separators=(",", ":")),
            _changes(r),
        ]
        for r in runs
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {0, 3, 6, *range(7, 7 + len(names))}  # numbers align right
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    )
