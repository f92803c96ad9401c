"""`train.jit_compile` -> XLA on or off for the training step.

With "auto", both modes are timed on the real model and the real input pipeline before training.
A freshly built model per mode first runs a short warm-up `fit` (tracing, XLA compilation, the first
steps); then the two modes take turns, ROUNDS short windows each, in alternating order, so a change
in the machine's load falls on both. A callback timestamps each step; the median step interval over
a mode's windows is its steady step, and the warm-up's wall time beyond its steps is its fixed cost.
The mode with the smaller `fixed + planned_steps * step` wins, but XLA only by more than MARGIN:
below that, graph mode (the default) is kept and the reason says so.

Graph mode is timed first. Its warm-up and first window predict the training's time; when timing XLA
would cost more than `budget` (train.jit_probe_budget) of it, as for a short training where XLA's
compilation alone would eat any gain, graph mode is kept without compiling XLA, and the reason says so.
The measurement is cached per model and device (keel.executors.training.probe_cache) and reused by later
runs with other steps or learning rates; a graph-only one is completed when a later run plans enough
steps. On a TPU the answer is always XLA (TPUs run nothing else), so nothing is timed there.
"""

import dataclasses
import datetime
import itertools
import statistics
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from keel.executors.training.probe_cache import ProbeCache

WARMUP_STEPS = 2  # per mode, before any window: tracing, compilation and the first step
ROUNDS = 3  # alternating windows per mode
MIN_WINDOW, MAX_WINDOW = 4, 10  # steps per window (3 to 9 step intervals each)
MARGIN = 0.03  # XLA must be predicted this much faster to replace graph mode
PROBE_BUDGET = 0.05  # timing XLA may cost this share of the predicted training time (train.jit_probe_budget)


def window_steps(planned_steps: int) -> int:
    """Steps per timed window: a fiftieth of the planned steps, within [MIN_WINDOW, MAX_WINDOW]."""
    return max(MIN_WINDOW, min(MAX_WINDOW, planned_steps // 50))


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
    probe_cache: str | None = None  # the cache file of the measurement
    probe_reused: bool = False  # True when the measurement came from the cache, not from this run
    probe_s: float | None = None  # what measuring took in this run (0 when reused)

    def as_dict(self) -> dict:
        found = {
            "jit_compile": self.jit_compile,
            "setting": self.setting,
            "reason": self.reason,
            "planned_steps": self.planned_steps,
        }
        if self.probe:
            found["probe"] = {("xla" if t.jit_compile else "graph"): t.as_dict(self.planned_steps) for t in self.probe}
        if self.probe_s is not None:
            found["probe_s"] = round(self.probe_s, 3)
        if self.probe_cache:
            found["probe_cache"] = self.probe_cache
            found["probe_reused"] = self.probe_reused
        return found


class StepClock(keras.callbacks.Callback):
    """Wall-clock end time of every training step (not async-safe, so Keras calls it in step)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def _fit(model: keras.Model, dataset: tf.data.Dataset, steps: int) -> tuple[float, list[float]]:
    """Trains `model` `steps` steps; returns the fit's wall time and its step intervals."""
    clock = StepClock()
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    return time.perf_counter() - started, [b - a for a, b in itertools.pairwise(clock.ends)]


def _timing(jit: bool, warm_s: float, intervals: list[float]) -> ModeTiming:
    step = statistics.median(intervals)
    return ModeTiming(jit, fixed_s=max(0.0, warm_s - WARMUP_STEPS * step), step_s=step)


def measure(
    models: dict[bool, keras.Model],
    datasets: dict[bool, tf.data.Dataset],
    window: int,
    started: dict[bool, tuple[float, list[float]]] | None = None,
) -> list[ModeTiming]:
    """Times each mode in `models` (jit_compile -> compiled model; it trains them): a warm-up `fit`, then
    ROUNDS windows of `window` steps per mode, the modes alternating and their order flipping each round.
    `started` holds, per mode already warmed up, its warm-up's wall time and its first window's intervals.

    Raises what a mode's warm-up raises (XLA failing to compile).
    """
    started = started or {}
    warm = {
        jit: started[jit][0] if jit in started else _fit(model, datasets[jit], WARMUP_STEPS)[0]
        for jit, model in models.items()
    }
    intervals: dict[bool, list[float]] = {jit: list(started[jit][1]) if jit in started else [] for jit in models}
    order = list(models)
    for round_ in range(ROUNDS):
        for jit in order if round_ % 2 == 0 else reversed(order):
            if round_ == 0 and jit in started:
                continue  # its first window was timed already
            intervals[jit].extend(_fit(models[jit], datasets[jit], window)[1])
    return [_timing(jit, warm[jit], intervals[jit]) for jit in order]


def probe_cost_s(graph: ModeTiming, graph_setup_s: float, window: int) -> float:
    """What the whole probe is expected to cost: graph mode's set-up and its ROUNDS windows, XLA's set-up
    (at least graph mode's: building, tracing, then compiling) and its windows at graph mode's step."""
    return 2 * graph_setup_s + 2 * ROUNDS * window * graph.step_s


def over_budget(graph: ModeTiming, probe_s: float, planned_steps: int, budget: float | None) -> str | None:
    """Why timing XLA is not worth it for `planned_steps`, or None when it fits in `budget` of the training."""
    training = graph.predicted_s(planned_steps)
    if budget is None or probe_s <= budget * training:
        return None
    return (
        f"graph mode kept (the default) without timing XLA: {planned_steps} steps are predicted to take "
        f"{training:.1f}s, and timing XLA would cost about {probe_s:.1f}s, over the {budget:.0%} budget "
        "(train.jit_probe_budget)"
    )


def _cause(error: tf.errors.OpError) -> str:
    """The line of a TensorFlow error that says what went wrong, without its Python traceback."""
    noise = ("Graph execution error", "Detected at node", "File ", "Cf. ", "[[")
    lines = [line.strip() for line in error.message.splitlines()]
    lines = [line for line in lines if line and not line.startswith(noise)]
    return (lines[-1] if lines else error.__class__.__name__)[:300]


def faster(graph: ModeTiming, xla: ModeTiming, planned_steps: int) -> ModeTiming:
    """The mode with the shorter predicted wall time over `planned_steps`; graph mode on a tie."""
    return xla if xla.predicted_s(planned_steps) < graph.predicted_s(planned_steps) else graph


def decide(graph: ModeTiming, xla: ModeTiming, planned_steps: int, margin: float = MARGIN) -> tuple[bool, str]:
    """XLA on or off, and why: XLA only when predicted more than `margin` faster over `planned_steps`."""
    best = faster(graph, xla, planned_steps)
    other = xla if best is graph else graph
    ratio = other.predicted_s(planned_steps) / max(best.predicted_s(planned_steps), 1e-9)
    if best.jit_compile and ratio < 1 + margin:
        return False, (
            f"graph mode kept (the default): XLA measured only {ratio:.2f}x faster over {planned_steps} steps, "
            f"within the {margin:.0%} margin"
        )
    return (
        best.jit_compile,
        f"{'XLA' if best.jit_compile else 'graph mode'} measured {ratio:.2f}x faster over {planned_steps} steps",
    )


def _probe(compiled_model, dataset, planned_steps: int, budget: float | None) -> dict:
    """Measures both modes, or graph mode alone where timing XLA is over `budget`; the result as plain data
    (what the cache stores)."""
    window = window_steps(planned_steps)
    started = time.perf_counter()
    graph_model, graph_data = compiled_model(False), dataset()
    warm = _fit(graph_model, graph_data, WARMUP_STEPS)[0]
    first = _fit(graph_model, graph_data, window)[1]
    estimate = _timing(False, warm, first)
    cost = probe_cost_s(estimate, time.perf_counter() - started - sum(first), window)
    if over_budget(estimate, cost, planned_steps, budget):
        return {"graph": dataclasses.asdict(estimate), "xla": None, "xla_problem": None, "probe_cost_s": cost}
    xla_model = compiled_model(True)
    if not xla_model.jit_compile:
        (graph,) = measure({False: graph_model}, {False: graph_data}, window, {False: (warm, first)})
        return {
            "graph": dataclasses.asdict(graph),
            "xla": None,
            "xla_problem": "a layer of the model does not support XLA",
        }
    try:
        graph, xla = measure(
            {False: graph_model, True: xla_model}, {False: graph_data, True: dataset()}, window, {False: (warm, first)}
        )
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
        (graph,) = measure({False: graph_model}, {False: graph_data}, window, {False: (warm, first)})
        return {
            "graph": dataclasses.asdict(graph),
            "xla": None,
            "xla_problem": f"XLA cannot compile the model: {_cause(e)}",
        }
    return {"graph": dataclasses.asdict(graph), "xla": dataclasses.asdict(xla), "xla_problem": None}


def choose_jit(
    setting: str | bool,
    compiled_model: Callable[[bool], keras.Model],
    dataset: Callable[[], tf.data.Dataset],
    planned_steps: int,
    on_tpu: bool = False,
    cache: ProbeCache | None = None,
    budget: float | None = PROBE_BUDGET,
    workers: int = 1,
) -> JitChoice:
    """Decides `jit_compile` for training.

    `compiled_model(jit)` returns a freshly built model compiled with `jit_compile=jit`; `dataset()`
    returns the training input. Both are called only for "auto" off TPUs, and not at all when
    `cache` holds this model's measurement. `budget` caps what timing XLA may cost, as a share of the
    predicted training time (None: no cap). With several `workers` "auto" keeps graph mode untimed:
    each worker would time on its own machine and could choose otherwise than the rest.
    """
    if on_tpu:
        return JitChoice(True, setting, "TPU: XLA is the only way a TPU runs", planned_steps)
    if setting != "auto":
        return JitChoice(bool(setting), setting, "set in the spec", planned_steps)
    if workers > 1:
        reason = f"not timed with {workers} workers, which must all compile alike; jit_compile = true turns XLA on"
        return JitChoice(False, setting, reason, planned_steps)
    found = cache.load() if cache else None
    if found and found["xla"] is None and "probe_cost_s" in found:  # graph mode only, for fewer steps than now?
        if not over_budget(ModeTiming(**found["graph"]), found["probe_cost_s"], planned_steps, budget):
            found = None
    reused, started = found is not None, time.perf_counter()
    if found is None:
        found = _probe(compiled_model, dataset, planned_steps, budget)
        if cache:
            cache.save({**found, "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    graph = ModeTiming(**found["graph"])
    where = {
        "probe_cache": str(cache.path) if cache else None,
        "probe_reused": reused,
        "probe_s": 0.0 if reused else time.perf_counter() - started,
    }
    if found["xla"] is None:
        reason = found["xla_problem"] or over_budget(graph, found["probe_cost_s"], planned_steps, budget)
        return JitChoice(False, setting, reason, planned_steps, (graph,), **where)
    xla = ModeTiming(**found["xla"])
    jit, reason = decide(graph, xla, planned_steps)
    return JitChoice(jit, setting, reason, planned_steps, (graph, xla), **where)
