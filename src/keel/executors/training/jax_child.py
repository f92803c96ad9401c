"""The JAX training child process (see keel.executors.training.jax_backend): `python -m` this module
with KERAS_BACKEND=jax and the job's directory; it leaves the weights, the agreement rows and result.json there."""

import json
import sys
from pathlib import Path

import numpy as np

from keel.core.errors import KeelError, ModelCodeError
from keel.executors.training.jax_backend import AGREEMENT_FILE, AGREEMENT_ROWS, JOB_FILE, RESULT_FILE, WEIGHTS_FILE


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
    trained = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)
    # The agreement rows are predicted by the saved weights on one device: what the Trainer exports. Measured
    # here: under DataParallel the trained model in memory has now and then predicted other values than its
    # saved weights do (cause not found), so that difference is recorded and said, not hidden.
    keras.distribution.set_distribution(None)
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(precision):
        saved = trainer.scaled(trainer.build_user_model(config, features), moments)
    saved.load_weights(str(work_dir / WEIGHTS_FILE))
    predictions = np.asarray(saved.predict(inputs, verbose=0), dtype=np.float32)
    in_memory_diff = float(np.abs(trained - predictions).max(initial=0.0))
    if in_memory_diff > 1e-4:
        print(
            f"    Trainer: warning: the {len(devices)}-device model in memory predicts up to {in_memory_diff:.3g} "
            "away from its saved weights on the eval rows; the saved weights are exported and evaluated",
            flush=True,
        )
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
            "in_memory_vs_saved_max_abs_diff": in_memory_diff,
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
