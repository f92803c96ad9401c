"""`train.jit_compile` -> XLA on or off for the training step.

With "auto", both modes are timed on the real model and the real input pipeline before training:
a freshly built model per mode runs a short `fit`, and a callback timestamps each step. The median
step after the first is the steady step; the rest of the `fit`'s wall time (tracing, XLA
compilation, set-up and wrap-up) is fixed cost. The mode with the smaller
`fixed + planned_steps * step` wins. On a TPU the answer
is always XLA (TPUs run nothing else), so nothing is timed there.
"""

import dataclasses
import itertools
import statistics
import time
from collections.abc import Callable

import keras
import tensorflow as tf

PROBE_STEPS = 10  # steady-state steps timed per mode, after the first


@dataclasses.dataclass(frozen=True)
class ModeTiming:
    """What one mode cost in the probe."""

    jit_compile: bool
    fixed_s: float  # what a fit costs besides its steps: tracing, compilation, set-up, wrap-up
    step_s: float  # median steady-state step

    def predicted_s(self, steps: int) -> float:
        """Expected wall time of `steps` training steps in this mode, compilation included."""
        return self.fixed_s + steps * self.step_s

    def as_dict(self, steps: int) -> dict:
        """Fixed cost, step time, and the predicted wall time of `steps` steps."""
        return {
            "fixed_s": round(self.fixed_s, 4),
            "step_ms": round(self.step_s * 1000, 4),
            "predicted_s": round(self.predicted_s(steps), 3),
        }


@dataclasses.dataclass(frozen=True)
class JitChoice:
    """The mode training uses, why, and the probe figures behind an "auto" choice."""

    jit_compile: bool
    setting: str | bool
    reason: str
    planned_steps: int
    probe: tuple[ModeTiming, ...] = ()

    def as_dict(self) -> dict:
        found = {
            "jit_compile": self.jit_compile,
            "setting": self.setting,
            "reason": self.reason,
            "planned_steps": self.planned_steps,
        }
        if self.probe:
            found["probe"] = {("xla" if t.jit_compile else "graph"): t.as_dict(self.planned_steps) for t in self.probe}
        return found


class StepClock(keras.callbacks.Callback):
    """Wall-clock end time of every training step (not async-safe, so Keras calls it in step)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def time_mode(model: keras.Model, dataset: tf.data.Dataset, probe_steps: int = PROBE_STEPS) -> ModeTiming:
    """Times a `fit` of `probe_steps + 1` steps of a compiled `model` on `dataset` (it trains the model).

    The steady step is the median step after the first; everything else in the `fit` (tracing,
    compilation, the set-up before the first step and the wrap-up after the last) is fixed cost,
    which a real `fit` of any length pays once.
    """
    clock = StepClock()
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=probe_steps + 1, verbose=0, callbacks=[clock])
    wall = time.perf_counter() - started
    step = statistics.median(b - a for a, b in itertools.pairwise(clock.ends))
    return ModeTiming(bool(model.jit_compile), fixed_s=max(0.0, wall - (probe_steps + 1) * step), step_s=step)


def _cause(error: tf.errors.OpError) -> str:
    """The line of a TensorFlow error that says what went wrong, without its Python traceback."""
    noise = ("Graph execution error", "Detected at node", "File ", "Cf. ", "[[")
    lines = [line.strip() for line in error.message.splitlines()]
    lines = [line for line in lines if line and not line.startswith(noise)]
    return (lines[-1] if lines else error.__class__.__name__)[:300]


def faster(graph: ModeTiming, xla: ModeTiming, planned_steps: int) -> ModeTiming:
    """The mode with the shorter predicted wall time over `planned_steps`; graph mode on a tie."""
    return xla if xla.predicted_s(planned_steps) < graph.predicted_s(planned_steps) else graph


def choose_jit(
    setting: str | bool,
    compiled_model: Callable[[bool], keras.Model],
    dataset: Callable[[], tf.data.Dataset],
    planned_steps: int,
    on_tpu: bool = False,
) -> JitChoice:
    """Decides `jit_compile` for training.

    `compiled_model(jit)` returns a freshly built model compiled with `jit_compile=jit`; `dataset()`
    returns the training input. Both are called only for "auto" off TPUs.
    """
    if on_tpu:
        return JitChoice(True, setting, "TPU: XLA is the only way a TPU runs", planned_steps)
    if setting != "auto":
        return JitChoice(bool(setting), setting, "set in the spec", planned_steps)
    probe_steps = max(1, min(PROBE_STEPS, planned_steps))
    graph = time_mode(compiled_model(False), dataset(), probe_steps)
    xla_model = compiled_model(True)
    if not xla_model.jit_compile:
        return JitChoice(False, setting, "a layer of the model does not support XLA", planned_steps, (graph,))
    try:
        xla = time_mode(xla_model, dataset(), probe_steps)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
        return JitChoice(False, setting, f"XLA cannot compile the model: {_cause(e)}", planned_steps, (graph,))
    best = faster(graph, xla, planned_steps)
    other = xla if best is graph else graph
    ratio = other.predicted_s(planned_steps) / max(best.predicted_s(planned_steps), 1e-9)
    reason = f"{'XLA' if best.jit_compile else 'graph mode'} measured {ratio:.2f}x faster over {planned_steps} steps"
    return JitChoice(best.jit_compile, setting, reason, planned_steps, (graph, xla))
