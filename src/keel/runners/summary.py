"""The end-of-run summary, read back from ML Metadata: what ran, what was cached, metrics, push."""

import dataclasses
import json
from pathlib import Path

from keel.core.tasks import METRICS
from keel.executors.training.record import describe_record, read_training_record
from keel.mlmd import evaluation, text
from keel.mlmd import store as metadata
from keel.pipeline.nodes import EVALUATOR, PUSHER, TRAINER

EVENT_FILES = "events.out.tfevents.*"  # how TensorFlow's summary writers name their files
STATE_WORDS = {
    "COMPLETE": "ran",
    "CACHED": "cached",
    "FAILED": "failed",
    "RUNNING": "interrupted",
    "NEW": "not run",
    "CANCELED": "canceled",
}


@dataclasses.dataclass
class ComponentResult:
    node_id: str
    status: str  # ran | cached | failed | not run | interrupted
    seconds: float | None
    cpu_seconds: float | None = None  # process CPU time (all threads) while it ran; None for runs before keel kept it


@dataclasses.dataclass
class RunSummary:
    pipeline: str
    workdir: Path
    seconds: float
    log_file: Path
    run_id: str | None = None
    components: list[ComponentResult] = dataclasses.field(default_factory=list)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    blessed: bool | None = None
    blessing_reasons: list[str] = dataclasses.field(default_factory=list)
    model_uri: str | None = None
    training: str | None = None  # placement, precision and the XLA choice (keel.executors.training.record)
    pushed_to: str | None = None
    tensorboard_logdir: str | None = None  # the Trainer's model_run directory, when it holds TensorBoard logs

    def status_of(self, node_id: str) -> str:
        return next((c.status for c in self.components if c.node_id == node_id), "not run")

    def render(self) -> str:
        lines = [
            f"summary of {self.pipeline} run {self.run_id or '(not started)'} "
            f"({self.seconds:.1f}s; log {self.log_file})"
        ]
        for c in self.components:
            took = f"{c.seconds:7.1f}s" if c.seconds is not None and c.status == "ran" else " " * 8
            lines.append(f"  {c.node_id:<22} {c.status:<12} {took}")
        if self.training:
            lines.append(f"  training: {self.training}")
        if self.tensorboard_logdir:
            lines.append(f"  tensorboard: tensorboard --logdir {self.tensorboard_logdir}")
        if self.metrics:
            judged_first = sorted(self.metrics, key=lambda k: (k not in METRICS, k))
            shown = ", ".join(f"{k} {text.number(self.metrics[k])}{_direction(k)}" for k in judged_first)
            lines.append(f"  eval: {shown}")
        if self.blessed is not None:
            why = f" ({'; '.join(self.blessing_reasons)})" if self.blessing_reasons else ""
            lines.append(f"  blessed: {'yes' if self.blessed else 'no'}{why}")
        if self.pushed_to:
            lines.append(f"  pushed: {self.pushed_to}")
        elif self.blessed is False:
            lines.append("  pushed: nothing (the model was not blessed)")
        return "\n".join(lines)


def _direction(metric: str) -> str:
    known = METRICS.get(metric)
    return f" ({known.direction})" if known else ""


def has_event_files(logdir: str) -> bool:
    """Whether a directory holds TensorBoard event files (runs before keel wrote them have none)."""
    return any(Path(logdir).glob(f"*/{EVENT_FILES}"))


def collect_summary(
    store, run, name: str, node_ids: list[str], workdir: Path, seconds: float, log_file: Path
) -> RunSummary:
    """Builds the RunSummary of pipeline run `run` (a pipeline_run context, or None if none started)."""
    summary = RunSummary(pipeline=name, workdir=workdir, seconds=seconds, log_file=log_file)
    executions, cpu = {}, {}
    if run is not None:
        summary.run_id = run.name
        executions = {n.node_id: n for n in metadata.run_executions(store, run)}
        cpu = json.loads(metadata.custom(run, "keel_cpu_seconds", "{}"))
    for node_id in node_ids:
        ran = executions.get(node_id)
        status = STATE_WORDS.get(ran.state, ran.state.lower()) if ran else "not run"
        if ran and ran.is_resolver and status == "ran":
            status = "resolved"
        summary.components.append(ComponentResult(node_id, status, ran.seconds if ran else None, cpu.get(node_id)))

    def output(node_id: str, key: str):
        ran = executions.get(node_id)
        return metadata.output_artifact(store, ran.execution.id, key) if ran else None

    model = output(TRAINER, "model")
    summary.model_uri = model.uri if model else None
    record = read_training_record(model.uri) if model else None
    summary.training = describe_record(record) if record else None
    model_run = output(TRAINER, "model_run")
    if model_run is not None and has_event_files(model_run.uri):
        summary.tensorboard_logdir = model_run.uri
    if EVALUATOR in executions:
        judged = evaluation.read(store, executions[EVALUATOR].execution)
        summary.metrics, summary.blessed, summary.blessing_reasons = (
            judged.metrics,
            judged.blessed,
            judged.blessing_reasons,
        )
    pushed = output(PUSHER, "pushed_model")
    if pushed is not None and metadata.custom(pushed, "pushed", 0):
        summary.pushed_to = metadata.custom(pushed, "pushed_destination")
    return summary
