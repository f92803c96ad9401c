"""`[train] backend = "jax"`: the user's model trained on Keras 3's JAX backend, exported by TensorFlow.

Keras fixes its backend once per process, and the Trainer's process is TensorFlow's. So the Trainer
writes a job file and runs `keel.executors.training.jax_child` as a child process with
KERAS_BACKEND=jax:

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
        [sys.executable, "-m", "keel.executors.training.jax_child", str(work_dir)],
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
