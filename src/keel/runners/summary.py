"""The end-of-run summary, read back from ML Metadata: what ran, what was cached, metrics, push."""

import dataclasses
import json
from pathlib import Path

from keel.mlmd import store as metadata
from keel.executors.training.record import describe_record, read_training_record

STATE_WORDS = {"COMPLETE": "ran", "CACHED": "cached", "FAILED": "failed", "RUNNING": "interrupted",
               "NEW": "not run", "CANCELED": "canceled"}


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

    def status_of(self, node_id: str) -> str:
        return next((c.status for c in self.components if c.node_id == node_id), "not run")

    def render(self) -> str:
        lines = [f"summary of {self.pipeline} run {self.run_id or '(not started)'} "
                 f"({self.seconds:.1f}s; log {self.log_file})"]
        for c in self.components:
            took = f"{c.seconds:7.1f}s" if c.seconds is not None and c.status == "ran" else " " * 8
            lines.append(f"  {c.node_id:<22} {c.status:<12} {took}")
        if self.training:
            lines.append(f"  training: {self.training}")
        if self.metrics:
            shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.metrics.items())
            lines.append(f"  eval: {shown}")
        if self.blessed is not None:
            why = f" ({'; '.join(self.blessing_reasons)})" if self.blessing_reasons else ""
            lines.append(f"  blessed: {'yes' if self.blessed else 'no'}{why}")
        if self.pushed_to:
            lines.append(f"  pushed: {self.pushed_to}")
        elif self.blessed is False:
            lines.append("  pushed: nothing (the model was not blessed)")
        return "\n".join(lines)


def eval_metrics(uri: str) -> dict[str, float]:
    """The overall-slice metrics TFMA wrote to an Evaluator's `evaluation` output at `uri`."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(uri)
    found = {}
    for slice_key, by_output in result.slicing_metrics:
        if slice_key != ():
            continue
        for by_sub_key in by_output.values():
            for values in by_sub_key.values():
                for name, value in values.items():
                    number = value.get("doubleValue", value.get("int64Value")) if isinstance(value, dict) else value
                    if number is not None:
                        found[name] = int(number) if name == "example_count" else float(number)
    return found


def _blessing_reasons(uri: str, blessed: bool) -> list[str]:
    import tensorflow_model_analysis as tfma

    try:
        validation = tfma.load_validation_result(uri)
    except Exception:  # an Evaluator without thresholds writes no validation result
        return []
    reasons = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            kind = "change vs the latest blessed model" if failure.metric_key.is_diff else "value"
            reasons.append(f"{failure.metric_key.name} {kind} {failure.metric_value.double_value.value:.4f} "
                           f"fails its threshold: {failure.message or failure.metric_threshold}".strip())
    if blessed and not reasons:
        reasons.append("every threshold met")
    return reasons


def collect_summary(store, run, name: str, node_ids: list[str], workdir: Path, seconds: float,
                    log_file: Path) -> RunSummary:
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
        artifacts = metadata.outputs(store, ran.execution.id).get(key, []) if ran else []
        return artifacts[0] if artifacts else None

    model = output("Trainer", "model")
    summary.model_uri = model.uri if model else None
    record = read_training_record(model.uri) if model else None
    summary.training = describe_record(record) if record else None
    evaluation = output("Evaluator", "evaluation")
    blessing = output("Evaluator", "blessing")
    if evaluation is not None:
        summary.metrics = eval_metrics(evaluation.uri)
    if blessing is not None:
        summary.blessed = bool(metadata.custom(blessing, "blessed", 0))
        summary.blessing_reasons = _blessing_reasons(evaluation.uri, summary.blessed) if evaluation else []
    pushed = output("Pusher", "pushed_model")
    if pushed is not None and metadata.custom(pushed, "pushed", 0):
        summary.pushed_to = metadata.custom(pushed, "pushed_destination")
    return summary
