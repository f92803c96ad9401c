"""The one reader of what the Evaluator wrote: TFMA's overall-slice metrics, the blessing and its reasons.

An Evaluator execution writes an `evaluation` artifact (TFMA's metrics and, when thresholds are
configured, a validation result) and a `blessing` artifact (`blessed` = 1 or 0). The metrics include
`NAME_diff` entries (the change against the baseline model) when a baseline was resolved.
"""

import dataclasses

from keel.mlmd import store as metadata
from keel.pipeline.nodes import EVALUATOR

DIFF_SUFFIX = "_diff"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """How the Evaluator judged one model; `blessed` is None where no Evaluator judged it."""

    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    evaluation_uri: str | None = None
    blessed: bool | None = None
    baseline_model_id: int | None = None
    blessing_reasons: list[str] = dataclasses.field(default_factory=list)

    @property
    def values(self) -> dict[str, float]:
        """The metrics without the `_diff` entries (the model's own values)."""
        return {k: v for k, v in self.metrics.items() if not k.endswith(DIFF_SUFFIX)}

    @property
    def changes(self) -> dict[str, float]:
        """The change of each metric against the baseline model, keyed by metric name."""
        return {k.removesuffix(DIFF_SUFFIX): v for k, v in self.metrics.items() if k.endswith(DIFF_SUFFIX)}


def overall_metrics(uri: str) -> dict[str, float]:
    """The overall-slice metrics TFMA wrote to an Evaluator's `evaluation` output at `uri`."""
    import tensorflow_model_analysis as tfma

    found = {}
    for slice_key, by_output in tfma.load_eval_result(uri).slicing_metrics:
        if slice_key != ():
            continue
        for by_sub_key in by_output.values():
            for values in by_sub_key.values():
                for name, value in values.items():
                    number = value.get("doubleValue", value.get("int64Value")) if isinstance(value, dict) else value
                    if number is not None:
                        found[name] = int(number) if name == "example_count" else float(number)
    return found


def _has_validation_result(uri: str) -> bool:
    import tensorflow as tf
    from tensorflow_model_analysis import constants

    # The file pattern TFMA's own reader looks for; an Evaluator without thresholds writes none.
    return bool(tf.io.gfile.glob(f"{uri.rstrip('/')}/{constants.VALIDATIONS_KEY}*.tfrecord"))


def blessing_reasons(uri: str, blessed: bool) -> list[str]:
    """Why the Evaluator at `uri` blessed the model or not: each failed threshold, one line each."""
    if not _has_validation_result(uri):
        return []
    import tensorflow_model_analysis as tfma
    from google.protobuf import text_format

    reasons = []
    for per_slice in tfma.load_validation_result(uri).metric_validations_per_slice:
        for failure in per_slice.failures:
            kind = "change vs the latest blessed model" if failure.metric_key.is_diff else "value"
            threshold = failure.message or text_format.MessageToString(failure.metric_threshold, as_one_line=True)
            reasons.append(
                f"{failure.metric_key.name} {kind} {failure.metric_value.double_value.value:.4f} "
                f"fails its threshold: {threshold}"
            )
    if blessed and not reasons:
        reasons.append("every threshold met")
    return reasons


def read(store, evaluator) -> Evaluation:
    """What one Evaluator execution wrote: metrics, blessing, its reasons and the baseline it compared with."""
    evaluation = metadata.output_artifact(store, evaluator.id, "evaluation")
    blessing = metadata.output_artifact(store, evaluator.id, "blessing")
    baseline = metadata.input_artifact(store, evaluator.id, "baseline_model")
    blessed = bool(metadata.custom(blessing, "blessed", 0)) if blessing is not None else None
    if evaluation is None or evaluator.last_known_state not in metadata.FINISHED:
        return Evaluation(blessed=blessed, baseline_model_id=baseline.id if baseline else None)
    return Evaluation(
        metrics=overall_metrics(evaluation.uri),
        evaluation_uri=evaluation.uri,
        blessed=blessed,
        baseline_model_id=baseline.id if baseline else None,
        blessing_reasons=blessing_reasons(evaluation.uri, blessed) if blessed is not None else [],
    )


def evaluator_of(store, model):
    """The newest finished Evaluator execution that judged `model` (a Model artifact) as its candidate, or None."""
    found = metadata.readers(store, model.id, "model", EVALUATOR)
    return found[-1] if found else None


def evaluation_of(store, model) -> Evaluation:
    """How the newest Evaluator that judged `model` saw it; an empty Evaluation if none did."""
    evaluator = evaluator_of(store, model)
    return read(store, evaluator) if evaluator is not None else Evaluation()
