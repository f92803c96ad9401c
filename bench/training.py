"""Benchmark: training throughput on TensorFlow (XLA off, on, keel's measured "auto") and on JAX, against the matmul peak.

    .venv/bin/python bench/training.py [--scale 1.0] [--rounds 3]

For three models (the penguin MLP of models/tabular.py, a wide MLP of width 1024, and a small CNN),
in one process and side by side:

Over interleaved rounds (medians reported):

- off / on: a fresh model compiled with jit_compile=False / True trains STEPS steps; steps/s is
  STEPS over the wall time, first step (tracing, compilation) included;
- JAX: the same model, built by the same code, on Keras 3's JAX backend (every step compiled by
  jax.jit) in a child process with KERAS_BACKEND=jax, since Keras fixes its backend per process;
- first step: the wall time of a mode's first step, which holds its tracing and compilation;
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
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
JAX_CHILD = "--jax-child"  # argv of the child that trains one model on JAX (see jax_child_main)
if JAX_CHILD in sys.argv:
    os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported: it fixes its backend then

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
GOAL_PROBE = 0.05  # the probe <= this share of the training's time


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
    """Wall time of `steps` steps (first included), the first step's time and the steady-state step time."""
    clock = StepClock()
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    wall = time.perf_counter() - started
    step = statistics.median(b - a for a, b in zip(clock.ends, clock.ends[1:], strict=False))
    return {"wall": wall, "steps_per_s": steps / wall, "steady_per_s": 1 / step, "first_s": clock.ends[0] - started}


def datasets(name: str, scale: float):
    """(steps, batch, a function returning the model's fresh input pipeline)."""
    _, data, batch, steps = MODELS[name]
    steps = max(20, int(steps * scale))
    x, y = data()

    def dataset() -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat().prefetch(2)

    return steps, batch, dataset


def train_on_jax(name: str, scale: float) -> dict:
    """`train` of model `name` on Keras' JAX backend, in a child process (its result as JSON on stdout)."""
    command = [sys.executable, __file__, JAX_CHILD, name, "--scale", str(scale)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    if done.returncode != 0:
        raise SystemExit(f"the JAX child for {name} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def jax_child_main(name: str, scale: float) -> None:
    """The child: trains model `name` once on JAX and prints `train`'s figures and JAX's version as JSON."""
    import jax

    steps, _, dataset = datasets(name, scale)
    keras.utils.set_random_seed(0)
    model = MODELS[name][0]()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    print(json.dumps({**train(model, dataset(), steps), "jax": jax.__version__, "backend": keras.backend.backend()}))


def measure(name: str, scale: float, rounds: int) -> dict:
    builder = MODELS[name][0]
    steps, batch, dataset = datasets(name, scale)
    runs = {"off": [], "on": [], "auto": [], "jax": []}
    for _ in range(rounds):  # interleaved, so a change in the machine's load hits every mode alike
        for label, jit in (("off", False), ("on", True)):
            runs[label].append(train(compiled(builder, jit), dataset(), steps))
        probe_started = time.perf_counter()
        choice = choose_jit("auto", lambda jit: compiled(builder, jit), dataset, steps)
        probe_wall = time.perf_counter() - probe_started
        auto = train(compiled(builder, choice.jit_compile), dataset(), steps)
        auto.update(
            with_probe_per_s=steps / (auto["wall"] + probe_wall),
            choice=choice.jit_compile,
            probe_wall=probe_wall,
            # the same round's fixed-mode training of the mode chosen: the choice's worth without the noise
            # between two trainings of one mode
            chosen_mode_per_s=runs["on" if choice.jit_compile else "off"][-1]["steps_per_s"],
        )
        runs["auto"].append(auto)
        runs["jax"].append(train_on_jax(name, scale))
        print(
            f"  {name}: off {runs['off'][-1]['steps_per_s']:.1f}, on {runs['on'][-1]['steps_per_s']:.1f}, "
            f"auto (XLA {'on' if choice.jit_compile else 'off'}: {choice.reason}) {auto['steps_per_s']:.1f}, "
            f"JAX {runs['jax'][-1]['steps_per_s']:.1f} steps/s",
            flush=True,
        )
    median = {
        label: {k: statistics.median(r[k] for r in found) for k in found[0] if isinstance(found[0][k], float)}
        for label, found in runs.items()
    }
    median["jax"]["version"] = runs["jax"][0]["jax"]
    median["auto"]["choices"] = [r["choice"] for r in runs["auto"]]
    return {"steps": steps, "batch": batch, "gflop_per_step": training_flops(builder(), batch) / 1e9, **median}


MODES = (("off", "graph"), ("on", "XLA"), ("jax", "JAX"))


def render(rows: dict, peaks: dict, command: str, load: tuple, rounds: int) -> str:
    numpy_peak, tf_peak = peaks["numpy"], peaks["tensorflow"]
    jax_version = next(iter(rows.values()))["jax"]["version"]
    lines = [
        "# Training throughput: TensorFlow graph mode, TensorFlow XLA, JAX, and keel's measured auto",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, JAX {jax_version}, numpy {np.__version__}. 1-minute load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after. The modes are interleaved over {rounds} round{'s' if rounds != 1 else ''} "
        "(graph, XLA, auto, JAX in each) and medians are shown.",
        f"float32 matmul peak (n=2048, best of 5): numpy **{numpy_peak:.1f} GFLOP/s**, "
        f"tf.linalg.matmul **{tf_peak:.1f} GFLOP/s**.",
        "",
        "steps/s = steps / wall time of `fit`, first step included; first step = that step's wall time "
        "(tracing and compilation); steady = 1 / the median step interval after it. graph and XLA are Keras "
        "on TensorFlow with jit_compile off and on; JAX is the same model code on Keras' JAX backend "
        "(every step jax.jit-compiled). GFLOP/s = training FLOPs per step x the best steady steps/s.",
        "",
        "| model | batch | steps | GFLOP/step | graph steps/s | XLA steps/s | JAX steps/s | graph first step | "
        "XLA first step | JAX first step | steady graph / XLA / JAX | GFLOP/s | % of numpy peak | % of TF matmul |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for name, r in rows.items():
        gflops = r["gflop_per_step"] * max(r[mode]["steady_per_s"] for mode, _ in MODES)
        lines.append(
            f"| {name} | {r['batch']} | {r['steps']} | {r['gflop_per_step']:.4f} | "
            + " | ".join(f"{r[mode]['steps_per_s']:.1f}" for mode, _ in MODES)
            + " | "
            + " | ".join(f"{r[mode]['first_s']:.2f}s" for mode, _ in MODES)
            + " | "
            + " / ".join(f"{r[mode]['steady_per_s']:.1f}" for mode, _ in MODES)
            + f" | {gflops:.2f} | {100 * gflops / numpy_peak:.0f}% | {100 * gflops / tf_peak:.0f}% |"
        )
        fastest = max(MODES, key=lambda m: r[m[0]]["steps_per_s"])
        tf_best = max(r["off"]["steps_per_s"], r["on"]["steps_per_s"])
        verdicts.append(
            f"- {name}: fastest over {r['steps']} steps is {fastest[1]}; JAX / the better TensorFlow mode = "
            f"{r['jax']['steps_per_s'] / tf_best:.2f}x (steady state {r['jax']['steady_per_s'] / max(r['off']['steady_per_s'], r['on']['steady_per_s']):.2f}x)."
        )
        if name.startswith("wide MLP"):
            verdicts.append(
                f"- {name}: {100 * gflops / numpy_peak:.0f}% of the numpy matmul peak (goal >= "
                f"{100 * GOAL_PEAK:.0f}%): {'met' if gflops >= GOAL_PEAK * numpy_peak else 'NOT met'}; "
                f"{100 * gflops / tf_peak:.0f}% of TensorFlow's own matmul rate."
            )
    lines += [
        "",
        'keel\'s `jit_compile = "auto"` on TensorFlow: its probe (keel.executors.training.jit) times both modes, '
        "then a fresh model trains in the chosen one. auto / best compares that training with the better of graph "
        "and XLA; probe % = the probe's wall time as a share of that training's (a later run of the same model reuses "
        "the cached measurement and pays none of it). chosen mode / best is the same round's fixed-mode training of "
        "the mode auto chose against the better one: the worth of the choice, without the difference between two "
        "trainings in one mode that auto / best also holds.",
        "",
        "| model | auto chose | auto steps/s | auto + probe steps/s | probe s | probe % of training | auto / best | "
        "chosen mode / best |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        best = max(r["off"]["steps_per_s"], r["on"]["steps_per_s"])
        auto = r["auto"]
        ratio = auto["steps_per_s"] / best
        chose = ", ".join("on" if c else "off" for c in auto["choices"])
        lines.append(
            f"| {name} | XLA {chose} | {auto['steps_per_s']:.1f} | {auto['with_probe_per_s']:.1f} | "
            f"{auto['probe_wall']:.1f} | {100 * auto['probe_wall'] / auto['wall']:.0f}% | {ratio:.2f}x | "
            f"{auto['chosen_mode_per_s'] / best:.2f}x |"
        )
        verdicts.append(
            f"- {name}: auto / best = {ratio:.2f}x (goal >= {GOAL_AUTO}x): "
            f"{'met' if ratio >= GOAL_AUTO else 'NOT met'} (the chosen mode: {auto['chosen_mode_per_s'] / best:.2f}x); "
            "the probe took "
            f"{100 * auto['probe_wall'] / auto['wall']:.0f}% of the training's time (goal <= {100 * GOAL_PROBE:.0f}%): "
            f"{'met' if auto['probe_wall'] <= GOAL_PROBE * auto['wall'] else 'NOT met'}."
        )
    return "\n".join(lines + ["", "Goals and reading:", *verdicts, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every model's step count")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of graph, XLA, auto and JAX")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(JAX_CHILD, metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jax_child:
        return jax_child_main(args.jax_child, args.scale)
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
