"""What a pipeline predicts (classes or a number) and the eval metrics that fit each.

One table, `METRICS`, says for every metric `[eval] metric` accepts: the TFMA class that computes it,
the task and label it fits, and its direction. The spec, the Evaluator's config, the Trainer, the
run summary and the monitor all read it, so a metric means the same thing everywhere.
"""

import dataclasses
from typing import Literal

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """One eval metric: how TFMA computes it, what it fits, and which way is better.

    `labels`: "any" (any classification), "binary" (exactly two classes, scored on the second class
    of the label vocabulary) or "number" (regression). `bounded`: the value lies in [0, 1].
    """

    name: str
    tfma_class: str
    task: Task
    labels: Literal["any", "binary", "number"]
    higher_is_better: bool
    bounded: bool

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def bar(self) -> str:
        """How `[eval] threshold` reads for this metric."""
        return "at least" if self.higher_is_better else "at most"


METRICS = {
    m.name: m
    for m in [
        MetricInfo("sparse_categorical_accuracy", "SparseCategoricalAccuracy", "classification", "any", True, True),
        MetricInfo("auc", "AUC", "classification", "binary", True, True),
        MetricInfo("precision", "Precision", "classification", "binary", True, True),
        MetricInfo("recall", "Recall", "classification", "binary", True, True),
        MetricInfo("binary_accuracy", "BinaryAccuracy", "classification", "binary", True, True),
        MetricInfo("mean_squared_error", "MeanSquaredError", "regression", "number", False, False),
        MetricInfo("mean_absolute_error", "MeanAbsoluteError", "regression", "number", False, False),
        MetricInfo("root_mean_squared_error", "RootMeanSquaredError", "regression", "number", False, False),
    ]
}
MetricName = Literal[tuple(METRICS)]
DEFAULT_METRIC: dict[Task, str] = {
    "classification": "sparse_categorical_accuracy",
    "regression": "root_mean_squared_error",
}
# The class index TFMA scores binary metrics on: the second entry of the label vocabulary (TFT orders
# it by frequency, so this is the rarer class).
POSITIVE_CLASS_INDEX = 1


def metric_of(name: str | None, task: Task) -> MetricInfo:
    """The metric `[eval] metric` names, or the task's default when it names none."""
    return METRICS[name or DEFAULT_METRIC[task]]


def metric_problem(name: str | None, task: Task, classes: int | None = None) -> str | None:
    """Why metric `name` cannot judge a `task` model (with `classes` label values, when known), or None."""
    metric = metric_of(name, task)
    if metric.task != task:
        fitting = ", ".join(m.name for m in METRICS.values() if m.task == task)
        return f"{metric.name!r} is a {metric.task} metric but the task is {task}; expected one of: {fitting}"
    if metric.labels == "binary" and classes is not None and classes != 2:
        return (
            f"{metric.name!r} judges a binary label but the label has {classes} classes; "
            "use sparse_categorical_accuracy"
        )
    return None


def threshold_problem(name: str | None, task: Task, threshold: float | None, max_regression: float) -> str | None:
    """Why `[eval] threshold` / `max_regression` cannot apply to the metric, or None."""
    metric = metric_of(name, task)
    if threshold is not None and metric.bounded and not 0.0 <= threshold <= 1.0:
        return f"eval.threshold: got {threshold!r}; {metric.name} lies in [0, 1]"
    if threshold is not None and not metric.bounded and threshold < 0.0:
        return f"eval.threshold: got {threshold!r}; {metric.name} is never negative"
    if metric.bounded and max_regression > 1.0:
        return f"eval.max_regression: got {max_regression!r}; {metric.name} lies in [0, 1], so at most 1"
    return None
