"""What the parity gate measures for each task: the one module of keel.export that branches on it.

- classification: the mobile model outputs `probabilities` [batch, classes]. Each variant's
  sparse_categorical_accuracy on the eval labels, its drop from the SavedModel's, argmax agreement
  and the largest difference of any probability; it passes when the drop is at most
  `max_accuracy_drop`; `most_accurate` picks the highest accuracy.
- regression: the mobile model outputs `predictions` [batch], in the label's units. Each variant's
  largest and mean absolute difference from the SavedModel's predictions, and its RMSE against the
  eval labels; it passes when the largest difference is at most `max_abs_diff`; `most_accurate`
  picks the lowest RMSE.

Both also gate on `max_size_bytes`, and rank ties by size (see keel.export.report).
"""

import math

import numpy as np

from keel.executors.signatures import OUTPUT_PREDICTIONS, OUTPUT_PROBABILITIES
from keel.export import examples as example_rows

REFERENCE = "savedmodel"  # the name of the SavedModel's row
COMMON_FIELDS = ("size_bytes", "latency_median_us", "latency_p99_us", "error", "passed", "reasons", "ops")


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """sparse_categorical_accuracy over rows with a known label (index >= 0)."""
    known = labels >= 0
    return float(np.mean(np.argmax(probabilities[known], axis=-1) == labels[known])) if known.any() else 0.0


def rmse(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Root mean squared error over rows with a known label (not NaN); NaN when none is known."""
    known = ~np.isnan(labels)
    if not known.any():
        return math.nan
    errors = predictions[known].astype(np.float64) - labels[known]
    return float(np.sqrt(np.mean(errors**2)))


class Classification:
    task = "classification"
    output = OUTPUT_PROBABILITIES
    metric = "sparse_categorical_accuracy"
    bound = "max_accuracy_drop"  # the policy setting the gate reads
    columns = ("accuracy", "drop (pp)", "argmax agreement", "max |diff|")
    # report.json's fields of a Measurement, in order
    fields = ("name", "accuracy", "size_bytes", "accuracy_drop", "agreement", "max_abs_diff", *COMMON_FIELDS[1:])

    def labels(self, records: list[bytes], label: str, signature) -> np.ndarray:
        return example_rows.label_indices(records, label, signature.label_vocabulary)

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> dict:
        """The SavedModel's own figures."""
        return {"accuracy": accuracy(outputs, labels)}

    def compare(self, outputs: np.ndarray, reference_outputs: np.ndarray, labels: np.ndarray, reference) -> dict:
        """A variant's figures next to the SavedModel's outputs and its Measurement `reference`."""
        value = accuracy(outputs, labels)
        return {
            "accuracy": value,
            "accuracy_drop": reference.accuracy - value,
            "agreement": float(np.mean(np.argmax(outputs, -1) == np.argmax(reference_outputs, -1))),
            "max_abs_diff": float(np.max(np.abs(outputs - reference_outputs))),
        }

    def failures(self, m, bound: float) -> list[str]:
        if m.accuracy_drop > bound + 1e-12:
            return [f"accuracy drop {m.accuracy_drop * 100:.2f} pp > max_accuracy_drop {bound * 100:.2f} pp"]
        return []

    def rank(self, m) -> float:
        """Lower is better: what `choose = "most_accurate"` minimises."""
        return -m.accuracy

    def cells(self, m) -> list[str]:
        drop = "-" if m.name == REFERENCE else f"{m.accuracy_drop * 100:+.2f}"
        return [f"{m.accuracy:.4f}", drop, f"{m.agreement:.4f}", f"{m.max_abs_diff:.2e}"]

    def properties(self, m) -> dict[str, float]:
        """The chosen variant's figures as the LiteModel artifact's ML Metadata properties."""
        return {"accuracy": m.accuracy, "accuracy_drop": m.accuracy_drop, "argmax_agreement": m.agreement}

    def describe(self, m) -> str:
        return f"accuracy {m.accuracy:.4f} (drop {m.accuracy_drop * 100:.2f} pp)"

    def explain(self, label: str) -> str:
        """What report.md says the figures are."""
        return f"metric: {self.metric}"


class Regression:
    task = "regression"
    output = OUTPUT_PREDICTIONS
    metric = "root_mean_squared_error"
    bound = "max_abs_diff"
    columns = ("rmse", "max abs diff", "mean abs diff")  # no "|": it would split a Markdown cell
    fields = ("name", "rmse", "size_bytes", "max_abs_diff", "mean_abs_diff", *COMMON_FIELDS[1:])

    def labels(self, records: list[bytes], label: str, signature) -> np.ndarray:
        return example_rows.label_values(records, label)

    def score(self, outputs: np.ndarray, labels: np.ndarray) -> dict:
        return {"rmse": rmse(outputs, labels), "mean_abs_diff": 0.0}

    def compare(self, outputs: np.ndarray, reference_outputs: np.ndarray, labels: np.ndarray, reference) -> dict:
        diff = np.abs(outputs.astype(np.float64) - reference_outputs)
        return {
            "rmse": rmse(outputs, labels),
            "max_abs_diff": float(np.max(diff)),
            "mean_abs_diff": float(np.mean(diff)),
        }

    def failures(self, m, bound: float) -> list[str]:
        if not m.max_abs_diff <= bound:  # NaN fails too
            return [f"max abs diff {m.max_abs_diff:.3g} > max_abs_diff {bound:g}"]
        return []

    def rank(self, m) -> float:
        return m.rmse if m.rmse is not None and not math.isnan(m.rmse) else math.inf

    def cells(self, m) -> list[str]:
        if m.name == REFERENCE:
            return [f"{m.rmse:.4g}", "-", "-"]
        return [f"{m.rmse:.4g}", f"{m.max_abs_diff:.3g}", f"{m.mean_abs_diff:.3g}"]

    def properties(self, m) -> dict[str, float]:
        return {"rmse": m.rmse, "max_abs_diff": m.max_abs_diff, "mean_abs_diff": m.mean_abs_diff}

    def describe(self, m) -> str:
        return f"rmse {m.rmse:.4g} (max abs diff {m.max_abs_diff:.3g}, mean abs diff {m.mean_abs_diff:.3g})"

    def explain(self, label: str) -> str:
        return (
            f"metric: {self.metric} against the {label} labels; max and mean abs diff: of each prediction from the "
            f"SavedModel's; all in {label}'s units"
        )


MEASURES = {m.task: m for m in (Classification(), Regression())}


def measure_of(task: str):
    """The measure of `task` ("classification" or "regression")."""
    return MEASURES[task]
