"""Benchmark: training throughput with XLA off, on, and keel's measured "auto", against the matmul peak.

    .venv/bin/python bench/training.py [--scale 1.0] [--rounds 3]

For three models (the penguin MLP of models/tabular.py, a wide MLP of width 1024, and a small CNN),
in one process and side by side:

Over interleaved rounds (medians reported):

- off / on: a fresh model compiled with jit_compile=False / True trains STEPS steps; steps/s is
  STEPS over the wall time, first step (tracing, compilation) included;
- auto: keel.executors.training.jit.choose_jit times both modes on the model and its input (the Trainer's
  probe), then a fresh model trains STEPS steps in the chosen mode. Reported both for the training
  alone and with the probe's wall time added;
- GFLOP/s: training FLOPs per step (3x the forward pass's 2 x multiply-adds of every Dense and Conv2D
  layer) x steady-state steps/s, against numpy's float32 matmul peak (2n^3 / t, best of several
  n=2048 products) measured in the same run.

Inputs are synthetic tensors of each model's shapes, held in memory, so the input pipeline is not
what is measured. Results go to bench/results/training.md.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "training.md"
sys.path.insert(0, str(REPO / "src"))
from keel.core.modules import load_module  # noqa: E402
from keel.data.features import FeatureSet  # noqa: E402
from keel.executors.training.jit import StepClock, choose_jit  # noqa: E402

GOAL_AUTO = 0.97  # auto >= this x the better fixed mode
GOAL_PEAK = 0.50  # the wide MLP >= this share of the numpy matmul peak


def penguin_model() -> keras.Model:
    features = FeatureSet(
        numeric=["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"],
        categorical={"island": 4, "sex": 3},
        label="species",
        label_vocabulary=["Adelie", "Chinstrap", "Gentoo"],
        raw_inputs=["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"],
    )
    return load_module(REPO / "models" / "tabular.py").build_model({"hidden": [32, 16]}, features)


def penguin_data(rows: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(0)
    x = {
        n: rng.normal(size=(rows, 1)).astype("float32")
        for n in ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    }
    x["island"] = rng.integers(0, 4, size=(rows, 1))
    x["sex"] = rng.integers(0, 3, size=(rows, 1))
    return x, rng.integers(0, 3, size=rows)


def wide_mlp() -> keras.Model:
    inputs = keras.Input(shape=(1024,))
    x = inputs
    for _ in range(3):
        x = keras.layers.Dense(1024, activation="relu")(x)  # (batch, 1024)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def small_cnn() -> keras.Model:
    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)  # (batch, 26, 26, 32)
    x = keras.layers.MaxPooling2D()(x)  # (batch, 13, 13, 32)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)  # (batch, 11, 11, 64)
    x = keras.layers.MaxPooling2D()(x)  # (batch, 5, 5, 64)
    x = keras.layers.Dense(128, activation="relu")(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def array_data(shape: tuple, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, *shape)).astype("float32"), rng.integers(0, 10, size=rows)


# name -> (builder, data, batch size, steps)
MODELS = {
    "penguin MLP (32, 16)": (penguin_model, lambda: penguin_data(1024), 32, 1500),
    "wide MLP (3 x 1024)": (wide_mlp, lambda: array_data((1024,), 2048), 256, 60),
    "small CNN (2 conv)": (small_cnn, lambda: array_data((28, 28, 1), 2048), 128, 60),
}


def training_flops(model: keras.Model, batch: int) -> float:
    """3 x forward FLOPs (2 per multiply-add) of the Dense and Conv2D layers, for one training step."""
    macs = 0
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dense):
            macs += int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            out_h, out_w = layer.output.shape[1:3]
            macs += int(np.prod(layer.kernel.shape)) * out_h * out_w
    return 3 * 2 * macs * batch


def numpy_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """numpy's float32 matmul rate: 2n^3 / t, best of `repeats` products."""
    a = np.random.default_rng(0).normal(size=(n, n)).astype("float32")
    b = np.random.default_rng(1).normal(size=(n, n)).astype("float32")
    a @ b  # warm-up: thread pool start
    return 2 * n**3 / min(_timed(lambda: a @ b) for _ in range(repeats)) / 1e9


def tensorflow_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The same for tf.linalg.matmul (the kernels Keras' Dense layers run on)."""
    a = tf.random.normal((n, n), seed=0)
    b = tf.random.normal((n, n), seed=1)
    tf.linalg.matmul(a, b).numpy()
    return 2 * n**3 / min(_timed(lambda: tf.linalg.matmul(a, b).numpy()) for _ in range(repeats)) / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def compiled(builder, jit: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = builder()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit)
    return model


def train(model: keras.Model, dataset: tf.data.Dataset, steps: int) -> dict:
    """Wall time of `steps` steps (first included) and the steady-state step time."""
    clock = StepClock()
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    wall = time.perf_counter() - started
    step = statistics.median(b - a for a, b in zip(clock.ends, clock.ends[1:], strict=False))
    return {"wall": wall, "steps_per_s": steps / wall, "steady_per_s": 1 / step}


def measure(name: str, scale: float, rounds: int) -> dict:
    builder, data, batch, steps = MODELS[name]
    steps = max(20, int(steps * scale))
    x, y = data()

    def dataset() -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat().prefetch(2)

    runs = {"off": [], "on": [], "auto": []}
    for _ in range(rounds):  # interleaved, so a change in the machine's load hits every mode alike
        for label, jit in (("off", False), ("on", True)):
            runs[label].append(train(compiled(builder, jit), dataset(), steps))
        probe_started = time.perf_counter()
        choice = choose_jit("auto", lambda jit: compiled(builder, jit), dataset, steps)
        probe_wall = time.perf_counter() - probe_started
        auto = train(compiled(builder, choice.jit_compile), dataset(), steps)
        auto.update(
            with_probe_per_s=steps / (auto["wall"] + probe_wall), choice=choice.jit_compile, probe_wall=probe_wall
        )
        runs["auto"].append(auto)
        print(
            f"  {name}: off {runs['off'][-1]['steps_per_s']:.1f}, on {runs['on'][-1]['steps_per_s']:.1f}, "
            f"auto (XLA {'on' if choice.jit_compile else 'off'}: {choice.reason}) {auto['steps_per_s']:.1f} "
            f"steps/s",
            flush=True,
        )
    median = {
        label: {k: statistics.median(r[k] for r in found) for k in found[0] if k != "choice"}
        for label, found in runs.items()
    }
    median["auto"]["choices"] = [r["choice"] for r in runs["auto"]]
    return {"steps": steps, "batch": batch, "gflop_per_step": training_flops(builder(), batch) / 1e9, **median}


def render(rows: dict, peaks: dict, command: str, load: tuple, rounds: int) -> str:
    numpy_peak, tf_peak = peaks["numpy"], peaks["tensorflow"]
    lines = [
        "# Training throughput: XLA off, on, and keel's measured auto",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, numpy {np.__version__}. 1-minute load average {load[0]:.2f} before, "
        f"{load[1]:.2f} after: the machine is shared, so absolute figures move between runs; the modes are "
        f"interleaved over {rounds} rounds and medians are shown.",
        f"float32 matmul peak (n=2048, best of 5): numpy **{numpy_peak:.1f} GFLOP/s**, "
        f"tf.linalg.matmul **{tf_peak:.1f} GFLOP/s**.",
        "",
        "steps/s = steps / wall time of `fit`, first step (tracing, XLA compilation) included. auto = the mode "
        "keel's probe chose, trained from scratch; \"+ probe\" adds the probe's wall time. auto / best compares "
        "auto's training with the better of off and on. GFLOP/s = training FLOPs per step x the better mode's "
        "steady-state steps/s.",
        "",
        "| model | batch | steps | GFLOP/step | off steps/s | on steps/s | auto chose | auto steps/s | "
        "auto + probe steps/s | probe s | auto / best | GFLOP/s | % of numpy peak | % of TF matmul |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for name, r in rows.items():
        best = max(r["off"]["steps_per_s"], r["on"]["steps_per_s"])
        gflops = r["gflop_per_step"] * max(r["off"]["steady_per_s"], r["on"]["steady_per_s"])
        auto = r["auto"]
        ratio = auto["steps_per_s"] / best
        chose = ", ".join("on" if c else "off" for c in auto["choices"])
        lines.append(
            f"| {name} | {r['batch']} | {r['steps']} | {r['gflop_per_step']:.4f} | {r['off']['steps_per_s']:.1f} | "
            f"{r['on']['steps_per_s']:.1f} | XLA {chose} | {auto['steps_per_s']:.1f} | "
            f"{auto['with_probe_per_s']:.1f} | {auto['probe_wall']:.1f} | {ratio:.2f}x | {gflops:.2f} | "
            f"{100 * gflops / numpy_peak:.0f}% | {100 * gflops / tf_peak:.0f}% |"
        )
        verdicts.append(
            f"- {name}: auto / best = {ratio:.2f}x (goal >= {GOAL_AUTO}x): "
            f"{'met' if ratio >= GOAL_AUTO else 'NOT met'}; counting the probe's time, "
            f"{auto['with_probe_per_s'] / best:.2f}x."
        )
        if name.startswith("wide MLP"):
            verdicts.append(
                f"- {name}: {100 * gflops / numpy_peak:.0f}% of the numpy matmul peak (goal >= "
                f"{100 * GOAL_PEAK:.0f}%): {'met' if gflops >= GOAL_PEAK * numpy_peak else 'NOT met'}; "
                f"{100 * gflops / tf_peak:.0f}% of TensorFlow's own matmul rate."
            )
    return "\n".join(lines + ["", "Goals:", *verdicts, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every model's step count")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of off, on and auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    peaks = {"numpy": numpy_peak_gflops(), "tensorflow": tensorflow_peak_gflops()}
    print(f"float32 matmul peak: numpy {peaks['numpy']:.1f}, TensorFlow {peaks['tensorflow']:.1f} GFLOP/s", flush=True)
    rows = {name: measure(name, args.scale, args.rounds) for name in MODELS}
    command = ".venv/bin/python bench/training.py" + "".join(
        f" --{k} {v}" for k, v in (("scale", args.scale), ("rounds", args.rounds)) if v != parser.get_default(k)
    )
    report = render(rows, peaks, command, (load_before, os.getloadavg()[0]), args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
