"""TensorBoard logs of one training run, written to the Trainer's `model_run` directory.

`keras.callbacks.TensorBoard` writes the model's graph (the Keras model summary TensorBoard draws)
and the epoch-level metrics under `train/`. Its per-step scalars are not used: measured on Keras 3.6,
with `update_freq=N` it writes every batch, all at step 0. So keel's own callback writes
`batch_<metric>` (loss and every compiled metric) every `every` steps under `train/`, at the step
number; `write_validation` adds the Trainer's validation metrics under `validation/` at the last step.
"""

from pathlib import Path

import keras
import tensorflow as tf

POINTS = 100  # about this many points per curve, however many steps are planned
TRAIN, VALIDATION = "train", "validation"


def log_every(steps: int) -> int:
    """How many steps apart the per-step scalars are written: about POINTS points per run."""
    return max(1, steps // POINTS)


class _StepScalars(keras.callbacks.Callback):
    """Writes `batch_NAME` scalars for every metric in the batch logs, every `every` steps and at the last."""

    def __init__(self, log_dir: Path, steps: int, every: int):
        super().__init__()
        self.log_dir, self.steps, self.every, self.writer = log_dir, steps, every, None

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(str(self.log_dir / TRAIN))

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if self.writer is None or not (step % self.every == 0 or step == self.steps):
            return
        with self.writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"batch_{name}", float(value), step=step)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()


def callbacks(log_dir: str | Path, steps: int) -> list[keras.callbacks.Callback]:
    """The callbacks that log a `fit` of `steps` steps to `log_dir` (`tensorboard --logdir LOG_DIR`)."""
    log_dir = Path(log_dir)
    return [
        keras.callbacks.TensorBoard(str(log_dir), update_freq="epoch", write_graph=True),
        _StepScalars(log_dir, steps, log_every(steps)),
    ]


def write_validation(log_dir: str | Path, step: int, metrics: dict[str, float]) -> None:
    """The validation metrics at `step` (the last training step), under `validation/`."""
    writer = tf.summary.create_file_writer(str(Path(log_dir) / VALIDATION))
    with writer.as_default():
        for name, value in metrics.items():
            tf.summary.scalar(f"validation_{name}", float(value), step=step)
    writer.close()
