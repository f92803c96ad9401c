"""Each variant next to the SavedModel on the eval split: the task's figures (keel.export.measures), latency."""

import dataclasses
import time

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keel.core.errors import ExportError
from keel.export.examples import row_count, rows_of
from keel.export.measures import REFERENCE, accuracy, measure_of
from keel.export.mobile import MOBILE_SIGNATURE, RAW_SIGNATURE, raw_tensors
from keel.export.ops import model_ops, refuse_flex

__all__ = ["LiteRunner", "Measurement", "accuracy", "measure_variant", "savedmodel_reference"]


@dataclasses.dataclass
class Measurement:
    """One model's figures on the eval split (the SavedModel's, or a variant's).

    `task` says which figures apply: accuracy, accuracy_drop and agreement for classification;
    rmse and mean_abs_diff for regression (both: size, max_abs_diff, latency). report.json shows those.
    """

    name: str
    accuracy: float = 0.0
    size_bytes: int | None = None
    accuracy_drop: float = 0.0
    agreement: float = 1.0
    max_abs_diff: float = 0.0
    latency_median_us: float = 0.0
    latency_p99_us: float = 0.0
    error: str | None = None
    passed: bool = False
    reasons: list[str] = dataclasses.field(default_factory=list)
    task: str = "classification"
    rmse: float | None = None
    mean_abs_diff: float | None = None
    ops: list[str] = dataclasses.field(default_factory=list)  # the operators the .tflite uses


def _latency_us(call, examples: list, repeats: int) -> tuple[float, float]:
    """Median and p99 wall time of one-example calls, in microseconds, after one warm-up call.

    `examples` are ready-made inputs of one example each, so only the call itself is timed.
    """
    call(examples[0])
    times = []
    for i in range(repeats):
        example = examples[i % len(examples)]
        started = time.perf_counter_ns()
        call(example)
        times.append((time.perf_counter_ns() - started) / 1000.0)
    return float(np.median(times)), float(np.percentile(times, 99))


def _one_row_each(inputs: dict[str, np.ndarray], repeats: int) -> list[dict[str, np.ndarray]]:
    return [rows_of(inputs, i, i + 1) for i in range(min(repeats, row_count(inputs)))]


class LiteRunner:
    """A LiteRT interpreter on one .tflite model, called through its `serving_mobile` signature."""

    def __init__(self, content: bytes, output: str):
        self.interpreter = Interpreter(model_content=content, num_threads=1)
        self.runner = self.interpreter.get_signature_runner(MOBILE_SIGNATURE)
        self.output = output

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.runner(**inputs)[self.output]


def savedmodel_reference(
    loaded, records: list[bytes], labels: np.ndarray, signature, repeats: int
) -> tuple[Measurement, np.ndarray]:
    """The SavedModel's own figures: `serving_default` on the eval tf.Examples (what TF Serving
    returns) for the metric, and `serving_raw` on one example at a time for latency. Returns them
    with the SavedModel's outputs (probabilities or predictions, as `signature.task` says)."""
    measure = measure_of(signature.task)
    outputs = loaded.signatures["serving_default"](examples=tf.constant(records))[measure.output].numpy()
    raw = loaded.signatures[RAW_SIGNATURE]
    examples = [raw_tensors(signature, records[i : i + 1]) for i in range(min(repeats, len(records)))]
    median, p99 = _latency_us(lambda tensors: raw(**tensors), examples, repeats)
    figures = measure.score(outputs, labels)
    reference = Measurement(
        REFERENCE, task=measure.task, latency_median_us=median, latency_p99_us=p99, passed=True, **figures
    )
    return reference, outputs


def measure_variant(
    name: str,
    content: bytes,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    reference_outputs: np.ndarray,
    reference: Measurement,
    repeats: int,
) -> Measurement:
    """Runs `content` with LiteRT on every eval row and compares it with the SavedModel's outputs.

    A model that needs Select TF ops (Flex) is refused by name before it runs."""
    measure = measure_of(reference.task)
    ops = model_ops(content)
    refuse_flex(name, ops)
    rows = row_count(inputs)
    try:
        runner = LiteRunner(content, measure.output)
        outputs = np.concatenate([runner(rows_of(inputs, i, i + 256)) for i in range(0, rows, 256)])
        median, p99 = _latency_us(runner, _one_row_each(inputs, repeats), repeats)
    except (RuntimeError, ValueError) as e:
        raise ExportError(
            f"{name}: the converted model does not run in LiteRT: {str(e).strip().splitlines()[0]}"
        ) from None
    return Measurement(
        name,
        task=measure.task,
        size_bytes=len(content),
        latency_median_us=median,
        latency_p99_us=p99,
        ops=ops,
        **measure.compare(outputs, reference_outputs, labels, reference),
    )
