"""`[train] backend = "jax"`: the user's model trained on Keras 3's JAX backend, exported by TensorFlow.

Keras fixes its backend once per process, and the Trainer's process is TensorFlow's. So the Trainer
writes a job file and runs this module as a child process with KERAS_BACKEND=jax:

- the child reads the TFT-transformed examples TFX handed the Trainer (tf.data, on the CPU), builds
  the same `build_model` under the same seed, and fits it with every step compiled by `jax.jit`; with
  more than one JAX device it trains data-parallel over all of them (`keras.distribution.DataParallel`,
  the batch split across devices, one mesh axis);
- it saves the trained weights (`.weights.h5`, which every Keras backend reads), the validation
  metrics, and its predictions on the first eval rows;
- the Trainer then builds the TensorFlow-backend model, loads the weights, and checks that it
  predicts what the JAX model predicted on those rows (`check_agreement`) before exporting it with
  the usual signatures, so TFMA, TF Serving and LiteRT get the SavedModel they always get.

Every batch has the same shape (rows whose label cannot be scored are dropped before batching, the
last partial batch is dropped), so `jax.jit` compiles the training step once.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from keel.core.errors import KeelError, ModelCodeError, SpecError

BACKENDS = ("tensorflow", "jax", "auto")
JOB_FILE, RESULT_FILE, WEIGHTS_FILE, AGREEMENT_FILE = "job.json", "result.json", "model.weights.h5", "agreement.npz"
AGREEMENT_ROWS = 256
# float32 through two different compilers (XLA via jax.jit; TensorFlow's kernels): summation order
# differs, so outputs agree to a few ulps of their magnitude, not bit for bit.
RTOL, ATOL = 1e-4, 1e-5


def jax_devices() -> list:
    """JAX's devices, or a SpecError saying JAX is not installed."""
    try:
        import jax
    except ImportError:
        raise SpecError(
            'train.backend = "jax": JAX is not installed in this environment; `make install` puts it in '
            "every keel stack (or pip install jax, jax[tpu] on a TPU VM, jax[cuda12] on a GPU host)"
        ) from None
    return jax.devices()


def resolve_backend(setting: str) -> str:
    """ "tensorflow" or "jax" for the spec's `train.backend`.

    "auto" picks JAX only where it sees a TPU that TensorFlow cannot use (a TPU VM or Colab TPU
    runtime without tensorflow-tpu); everywhere else TensorFlow trains, as keel always has.
    """
    if setting not in BACKENDS:
        raise SpecError(f"train.backend: got {setting!r}; expected one of: {', '.join(BACKENDS)}")
    if setting != "auto":
        if setting == "jax":
            jax_devices()
        return setting
    try:
        import jax

        jax_tpus = [d for d in jax.devices() if d.platform == "tpu"]
    except (ImportError, RuntimeError):
        return "tensorflow"
    import tensorflow as tf

    return "jax" if jax_tpus and not tf.config.list_logical_devices("TPU") else "tensorflow"


@dataclasses.dataclass(frozen=True)
class JaxRun:
    """What the JAX child process left: the weights, the metrics and where it ran."""

    weights: Path
    agreement: Path
    train: dict
    validation: dict
    record: dict  # backend, versions, devices, precision, global batch
    seconds: float


def train_on_jax(job: dict, work_dir: Path) -> JaxRun:
    """Runs the JAX training child on `job` (see `_train`) in `work_dir`; its progress lines pass through."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / JOB_FILE).write_text(json.dumps(job))
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "keel.executors.training.jax_backend", str(work_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail: deque[str] = deque(maxlen=40)
    for line in child.stdout:
        if line.startswith("    Trainer:"):
            print(line, end="", flush=True)
        else:
            tail.append(line.rstrip())
    code = child.wait()
    result_path = work_dir / RESULT_FILE
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if code != 0 or "error" in result:
        if result.get("error"):
            raise (ModelCodeError if result.get("kind") == "model" else KeelError)(result["error"])
        last = next((t for t in reversed(tail) if t.strip()), f"exit status {code}")
        raise KeelError(f'train.backend = "jax": the JAX training process failed: {last}')
    return JaxRun(
        work_dir / WEIGHTS_FILE,
        work_dir / AGREEMENT_FILE,
        result["train"],
        result["validation"],
        result["record"],
        time.monotonic() - started,
    )


def check_agreement(model, agreement_file: Path) -> dict:
    """Compares the TensorFlow model's predictions with the JAX model's on the saved eval rows.

    Returns the figures (rows, max absolute and relative difference); raises KeelError beyond float tolerance.
    """
    saved = np.load(agreement_file)
    inputs = {k.removeprefix("x/"): saved[k] for k in saved.files if k.startswith("x/")}
    expected = saved["predictions"].astype(np.float64)
    actual = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)
    difference = np.abs(actual - expected)
    figures = {
        "rows": int(expected.shape[0]),
        "max_abs_diff": float(difference.max(initial=0.0)),
        "max_rel_diff": float((difference / np.maximum(np.abs(expected), ATOL)).max(initial=0.0)),
        "rtol": RTOL,
        "atol": ATOL,
    }
    if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
        raise KeelError(
            f'train.backend = "jax": the exported TensorFlow model and the JAX model disagree on '
            f"{figures['rows']} eval rows (max abs diff {figures['max_abs_diff']:.3g}, beyond "
            f"rtol {RTOL} / atol {ATOL}); the model uses an op the two backends compute differently"
        )
    return figures


# --- the child process -------------------------------------------------------------------------


def _rows(files, transform_output: str, features, batch_size: int, repeat: bool, seed: int):
    """Fixed-shape batches of (transformed features, label) from the Transform's gzipped TFRecords."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from keel.executors.trainer import known_rows

    spec = tft.TFTransformOutput(transform_output).transformed_feature_spec()
    paths = sorted(p for pattern in files for p in tf.io.gfile.glob(pattern))
    if not paths:
        raise KeelError(f"Trainer: no transformed examples match {', '.join(files)}")
    compression = "GZIP" if paths[0].endswith(".gz") else ""
    keep = known_rows(features, spec)
    dataset = (
        tf.data.TFRecordDataset(paths, compression_type=compression)
        .batch(1024)
        .map(lambda s: tf.io.parse_example(s, spec))
        .map(lambda x: keep(x, x.pop(features.label)))
        .unbatch()
    )
    if repeat:
        dataset = dataset.shuffle(10_000, seed=seed).repeat()
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _train(work_dir: Path) -> dict:
    import jax
    import keras

    from keel.data.features import FeatureSet
    from keel.executors import trainer
    from keel.executors.training import tensorboard
    from keel.executors.training.precision import dtype_policy
    from keel.pipeline.config import TrainerConfig, decode

    job = json.loads((work_dir / JOB_FILE).read_text())
    config = decode(TrainerConfig, job["config"])
    features = FeatureSet(**job["features"])
    moments = tuple(job["moments"]) if job["moments"] else None
    devices = jax.devices()
    batch_size = job["batch_size"] * len(devices)  # per device, as [train] batch_size is per replica
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    platform = devices[0].platform
    precision = job["precision"] if job["precision"] != "auto" else {"tpu": "mixed_bfloat16"}.get(platform, "float32")
    print(
        f"    Trainer: JAX {jax.__version__} on {len(devices)} {platform.upper()} device"
        f"{'s' if len(devices) != 1 else ''}, {precision}, global batch {batch_size}; every step compiled by jax.jit",
        flush=True,
    )
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(precision):
        model = trainer.build_user_model(config, features)
        if job["initial_weights"]:
            model.load_weights(job["initial_weights"])
        model = trainer.compile_model(trainer.scaled(model, moments), config, jit_compile=True)
    steps, eval_steps = job["train_steps"], job["eval_steps"]
    train = _rows(job["train_files"], job["transform_output"], features, batch_size, True, config.seed)
    evaluation = _rows(job["eval_files"], job["transform_output"], features, batch_size, True, config.seed)
    history = model.fit(
        train,
        epochs=1,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[trainer.Progress(steps), *tensorboard.callbacks(job["model_run_dir"], steps)],
    )
    validation = model.evaluate(evaluation, steps=eval_steps, verbose=0, return_dict=True)
    model.save_weights(str(work_dir / WEIGHTS_FILE))
    rows = _rows(job["eval_files"], job["transform_output"], features, 1, False, config.seed).take(AGREEMENT_ROWS)
    inputs = {n: np.concatenate([x[n].numpy() for x, _ in rows]) for n in features.names}
    predictions = np.asarray(model.predict(inputs, verbose=0), dtype=np.float32)
    np.savez(work_dir / AGREEMENT_FILE, predictions=predictions, **{f"x/{n}": v for n, v in inputs.items()})
    return {
        "train": {k: float(v[-1]) for k, v in history.history.items()},
        "validation": {k: float(v) for k, v in validation.items()},
        "record": {
            "backend": "jax",
            "jax_version": jax.__version__,
            "keras_version": keras.__version__,
            "platform": platform,
            "devices": [str(d) for d in devices],
            "distribution": "DataParallel" if len(devices) > 1 else "one device",
            "precision": precision,
            "global_batch_size": batch_size,
        },
    }


def main(argv: list[str]) -> int:
    """The child's entry point: trains the job in argv[0]; errors go to result.json as one line."""
    from keel.core.quiet import quiet_process

    quiet_process()
    work_dir = Path(argv[0])
    try:
        result = _train(work_dir)
    except KeelError as e:
        result = {"error": str(e), "kind": "model" if isinstance(e, ModelCodeError) else "keel"}
    (work_dir / RESULT_FILE).write_text(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
