"""The generic `run_fn` TFX's Trainer calls: build the user's model, fit it, export signatures.

The Trainer is configured with `run_fn="keel.executors.trainer.run_fn"` and a TrainerConfig (the model
module's path among it) in `custom_config`, so TFX never packages user code into a wheel at run time. The user's module
defines `build_model(hparams, features) -> keras.Model`, returning an uncompiled model whose inputs
are named after `features.names` and whose output is one probability per class (classification) or
one linear unit (regression, `features.task == "regression"`).

A regression model learns the z-scored label by default (`[train] label_scaling`): keel appends a
Rescaling layer with the training label's standard deviation and mean, so the trained and exported
model predict in the label's units while the user's last layer sees unit-scale targets.

The model is built and compiled under the strategy and dtype policy `keel.executors.training` resolves from
`[train]`, with XLA on or off as `keel.executors.training.jit` decides; the decision is saved with the model.

Under TF_CONFIG (a Vertex AI worker pool, or the processes `[train] workers` starts on 127.0.0.1) every
process runs this function and trains in step with the others (MultiWorkerMirroredStrategy); every one
exports, since a variable read may need them all, but only the chief writes where TFX looks, and no
process returns before the chief's model is written.
"""

import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from keel.core.errors import ModelCodeError, SpecError
from keel.core.modules import load_module, require_function
from keel.core.tasks import METRICS, POSITIVE_CLASS_INDEX, metric_problem
from keel.data.features import LABEL_VOCABULARY, LABEL_WEIGHT, FeatureSet, dtype_kind, split_features
from keel.executors import warm_start
from keel.executors.signatures import save_serving_model
from keel.executors.training import keras_multi_worker, probe_cache, tensorboard
from keel.executors.training.cluster import is_chief
from keel.executors.training.jax_backend import check_agreement, resolve_backend, train_on_jax
from keel.executors.training.jit import choose_jit
from keel.executors.training.precision import dtype_policy, resolve_precision
from keel.executors.training.record import describe_record, training_record, write_training_record
from keel.executors.training.strategy import resolve_strategy
from keel.pipeline.config import TrainerConfig, decode, encode


def feature_set(tf_transform_output: tft.TFTransformOutput, config: TrainerConfig) -> FeatureSet:
    """The FeatureSet for build_model, from the transform output and the trainer's config."""
    label = config.label
    vocabulary = []
    if config.task == "classification":
        vocabulary = [
            v.decode() if isinstance(v, bytes) else str(v)
            for v in tf_transform_output.vocabulary_by_name(LABEL_VOCABULARY)
        ]
    raw_spec = tf_transform_output.raw_feature_spec()
    if config.user_preprocessing:
        transformed = tf_transform_output.transformed_feature_spec()
        names = sorted(n for n in transformed if n not in (label, LABEL_WEIGHT))
        numeric = [n for n in names if transformed[n].dtype.is_floating]
        categorical = {}
        for n in names:
            if not transformed[n].dtype.is_floating:
                try:
                    categorical[n] = tf_transform_output.vocabulary_size_by_name(n) + 1
                except (ValueError, tf.errors.NotFoundError):
                    raise ModelCodeError(
                        f"preprocessing_fn: integer output {n!r} has no vocabulary named {n!r}; "
                        "encode it with keel.executors.transform.encode_categorical(x, name)"
                    ) from None
        raw_inputs = sorted(n for n in raw_spec if n != label)
    else:
        kinds = {n: dtype_kind(s.dtype) for n, s in raw_spec.items() if n != config.image}
        numeric, names = split_features(kinds, label, list(config.numeric), list(config.categorical))
        categorical = {n: tf_transform_output.vocabulary_size_by_name(n) + 1 for n in names}
        images = {config.image: list(config.image_shape)} if config.image else {}
        raw_inputs = [*numeric, *categorical, *images]
        return FeatureSet(numeric, categorical, label, vocabulary, raw_inputs, config.task, images)
    return FeatureSet(numeric, categorical, label, vocabulary, raw_inputs, config.task)


def _dataset(files, data_accessor, tf_transform_output, features: FeatureSet, batch_size: int, repeat=True):
    """Batches of (transformed features, label), repeated forever unless `repeat` is False."""
    dataset = data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size, label_key=features.label, num_epochs=None if repeat else 1
        ),
        tf_transform_output.transformed_metadata.schema,
    )
    return dataset.map(known_rows(features, tf_transform_output.transformed_feature_spec()))


def known_rows(features: FeatureSet, transformed_spec: dict):
    """A function (x, y) -> (x, y) that keeps the rows whose label can be scored, and only the model's inputs.

    A class unseen in training encodes as -1, a missing regression label has weight 0 (or, from a
    user's preprocessing_fn, is NaN); such rows cannot be scored and are left out.
    """
    names = features.names
    weighted = LABEL_WEIGHT in transformed_spec
    regression = features.task == "regression"

    def keep(x, y):
        if weighted:
            known = x[LABEL_WEIGHT] > 0
        else:
            known = tf.logical_not(tf.math.is_nan(y)) if regression else y >= 0
        known = tf.reshape(known, [-1])
        return {n: tf.boolean_mask(x[n], known) for n in names}, tf.boolean_mask(y, known)

    return keep


def label_moments(files, data_accessor, tf_transform_output, features: FeatureSet) -> tuple[float, float]:
    """The mean and standard deviation of the regression label over the training split (std 1 if constant)."""
    count, total, squares = 0, 0.0, 0.0
    for _, y in _dataset(files, data_accessor, tf_transform_output, features, 4096, repeat=False):
        y = tf.cast(y, tf.float64)
        count += int(tf.size(y))
        total += float(tf.reduce_sum(y))
        squares += float(tf.reduce_sum(y * y))
    if count == 0:
        raise ModelCodeError(f"data.label: {features.label!r} has no values in the training split")
    mean = total / count
    std = max(squares / count - mean * mean, 0.0) ** 0.5
    return mean, std if std > 0 else 1.0


def _check_metric(name: str, features: FeatureSet) -> None:
    """A binary metric needs two classes (the sample keel checked the spec on may not have shown them all)."""
    metric = METRICS[name]
    if metric.labels != "binary":
        return
    problem = metric_problem(name, "classification", features.num_classes)
    if problem:
        raise SpecError(f"eval.metric: {problem}")
    classes = features.label_vocabulary
    print(
        f"    Trainer: {name} scores {classes[POSITIVE_CLASS_INDEX]!r} as the positive class "
        f"(classes by frequency: {', '.join(classes)})",
        flush=True,
    )


def build_user_model(config: TrainerConfig, features: FeatureSet) -> keras.Model:
    """Calls the user's build_model and checks what it returns against the features and label."""
    path = config.module
    build_model = require_function(load_module(path), "build_model", path)
    try:
        model = build_model(dict(config.hparams), features)
    except Exception as e:
        raise ModelCodeError(f"model.module: build_model raised {e.__class__.__name__}: {e}") from e
    if not isinstance(model, keras.Model):
        raise ModelCodeError(f"model.module: build_model returned {type(model).__name__}; expected a keras.Model")
    width = model.outputs[0].shape[-1] if model.outputs else None
    if width != features.output_units and features.task == "regression":
        raise ModelCodeError(
            f"model.module: build_model's output has {width} units; the task is regression (predicting "
            f'{features.label!r}): expected 1 linear unit (or set [data] task = "classification")'
        )
    if width != features.output_units:
        raise ModelCodeError(
            f"model.module: build_model's output has {width} units; the label {features.label!r} has "
            f"{features.num_classes} classes ({', '.join(features.label_vocabulary)}): expected {features.num_classes}"
        )
    missing = [n for n in features.names if n not in {i.name for i in model.inputs}]
    if missing:
        raise ModelCodeError(f"model.module: build_model's model has no input named {', '.join(map(repr, missing))}")
    return model


def scaled(model: keras.Model, moments: tuple[float, float] | None) -> keras.Model:
    """The user's regression model followed by y * std + mean, when the label is z-scored."""
    if moments is None:
        return model
    mean, std = moments
    outputs = keras.layers.Rescaling(scale=std, offset=mean, name="keel_label_scale", dtype="float32")(model.outputs[0])
    return keras.Model(model.inputs, outputs, name=model.name)


_REGRESSION_METRICS = {
    "mean_squared_error": keras.metrics.MeanSquaredError,
    "mean_absolute_error": keras.metrics.MeanAbsoluteError,
    "root_mean_squared_error": keras.metrics.RootMeanSquaredError,
}


def compile_model(model: keras.Model, config: TrainerConfig, jit_compile: bool) -> keras.Model:
    if config.task == "regression":
        loss, metric = keras.losses.MeanSquaredError(), _REGRESSION_METRICS[config.metric](name=config.metric)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metric = keras.metrics.SparseCategoricalAccuracy(name="sparse_categorical_accuracy")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(config.hparams.get("learning_rate", 1e-3))),
        loss=loss,
        metrics=[metric],
        jit_compile=jit_compile,
    )
    return model


class Progress(keras.callbacks.Callback):
    """Prints a line at every tenth of the planned steps (Keras' bar is noise in logs)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps, self.every, self.started = steps, max(1, steps // 10), time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if step % self.every == 0 or step == self.steps:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            print(f"    Trainer: step {step}/{self.steps} ({time.monotonic() - self.started:.1f}s) {shown}", flush=True)


def _probe_cache(custom_config, config: TrainerConfig, features: FeatureSet, placement, precision, batch_size, moments):
    """Where the XLA probe's measurement for this model and device is kept (None: not kept, e.g. on Vertex)."""
    directory = (custom_config or {}).get(probe_cache.CUSTOM_CONFIG_KEY)
    if not directory:
        return None
    fields = probe_cache.key_fields(
        module_sha256=config.module_sha256,
        hparams=dict(config.hparams),
        batch_size=batch_size,
        features={"numeric": features.numeric, "categorical": features.categorical, "classes": features.output_units},
        training={"task": config.task, "metric": config.metric, "precision": precision, "label_scaled": bool(moments)},
        device=probe_cache.device_kind(placement.device, placement.replicas),
        stack=probe_cache.stack_versions(),
    )
    return probe_cache.ProbeCache(Path(directory), fields)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    config = decode(TrainerConfig, fn_args.custom_config)
    backend = resolve_backend(config.backend)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    features = feature_set(tf_transform_output, config)
    _check_metric(config.metric, features)
    moments = None
    if config.task == "regression" and config.label_scaling == "zscore":
        moments = label_moments(fn_args.train_files, fn_args.data_accessor, tf_transform_output, features)
        print(
            f"    Trainer: label {features.label!r} z-scored (mean {moments[0]:.6g}, std {moments[1]:.6g})", flush=True
        )
    train_with = _train_on_jax if backend == "jax" else _train_on_tensorflow
    model, trained, record, strategy = train_with(fn_args, config, features, moments, tf_transform_output)

    if not is_chief():  # a worker: export beside the chief, into a directory nobody reads
        with tempfile.TemporaryDirectory(prefix="keel-worker-export-") as scratch:
            save_serving_model(model, tf_transform_output, features, scratch, not config.user_preprocessing)
        keras_multi_worker.wait_for_every_worker(strategy)
        return
    save_serving_model(
        model, tf_transform_output, features, fn_args.serving_model_dir, default_transform=not config.user_preprocessing
    )
    report = {
        "features": {
            "numeric": features.numeric,
            "categorical": features.categorical,
            "label": features.label,
            "task": features.task,
            "classes": features.label_vocabulary,
            "label_scaling": {"mean": moments[0], "std": moments[1]} if moments else None,
        },
        **trained,
        **record,
    }
    write_training_record(fn_args.serving_model_dir, record)
    Path(fn_args.model_run_dir).mkdir(parents=True, exist_ok=True)
    (Path(fn_args.model_run_dir) / "training.json").write_text(json.dumps(report, indent=2))
    if strategy is not None:
        keras_multi_worker.wait_for_every_worker(strategy)


def _warm_start(model: keras.Model, fn_args) -> dict | None:
    if not fn_args.base_model:
        return None
    path = warm_start.artifact_path(fn_args.base_model)
    borrowed = {"path": str(path), "variables": warm_start.load_into(model, path)}
    print(f"    Trainer: warm start from {path} ({borrowed['variables']} variables)", flush=True)
    return borrowed


def _train_on_tensorflow(fn_args, config: TrainerConfig, features: FeatureSet, moments, tf_transform_output):
    """Fits the model on Keras' TensorFlow backend; returns it, what training.json records, and the
    strategy when several processes train together (None otherwise)."""
    placement = resolve_strategy(config.accelerator, config.tpu)
    precision = resolve_precision(config.precision, placement.device)
    batch_size = config.batch_size * placement.replicas  # the global batch: per-replica batch x replicas

    def probe_model(jit: bool) -> keras.Model:
        keras.utils.set_random_seed(config.seed)
        with placement.strategy.scope(), dtype_policy(precision):
            return compile_model(scaled(build_user_model(config, features), moments), config, jit)

    jit = choose_jit(
        config.jit_compile,
        probe_model,
        lambda: _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, features, batch_size),
        fn_args.train_steps,
        on_tpu=placement.device == "tpu",
        budget=config.jit_probe_budget,
        cache=_probe_cache(fn_args.custom_config, config, features, placement, precision, batch_size, moments),
        workers=placement.workers,
    )
    record = training_record(placement, precision, jit, batch_size)
    print(f"    Trainer: {describe_record(record)}", flush=True)

    # Seeded again after the probe, so the trained model does not depend on whether a probe ran.
    keras.utils.set_random_seed(config.seed)
    with placement.strategy.scope(), dtype_policy(precision):
        model = build_user_model(config, features)
        borrowed = _warm_start(model, fn_args)
        model = compile_model(scaled(model, moments), config, jit.jit_compile)
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, features, batch_size)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, features, batch_size)
    multi_worker = placement.workers > 1
    if multi_worker:
        keras_multi_worker.prepare(model)
        train = keras_multi_worker.shard_for_workers(train, fn_args.train_files, placement.workers)
        evaluation = keras_multi_worker.shard_for_workers(evaluation, fn_args.eval_files, placement.workers)
    chief = is_chief()
    # `tensorboard --logdir` reads the chief's logs only
    logged = tensorboard.callbacks(fn_args.model_run_dir, fn_args.train_steps) if chief else []
    with placement.strategy.scope() if multi_worker else contextlib.nullcontext():
        history = model.fit(
            train,
            epochs=1,
            steps_per_epoch=fn_args.train_steps,
            verbose=0,
            callbacks=[Progress(fn_args.train_steps), *logged],
        )
        validation = model.evaluate(evaluation, steps=fn_args.eval_steps, verbose=0, return_dict=True)
    if multi_worker:  # each worker validated its own shard
        validation = keras_multi_worker.mean_over_workers(placement.strategy, validation)
    print("    Trainer: validation " + ", ".join(f"{k} {v:.4f}" for k, v in validation.items()), flush=True)
    if chief:
        tensorboard.write_validation(fn_args.model_run_dir, fn_args.train_steps, validation)
    return (
        model,
        {
            "train": {k: float(v[-1]) for k, v in history.history.items()},
            "validation": {k: float(v) for k, v in validation.items()},
            "warm_start": borrowed,
        },
        record,
        placement.strategy if multi_worker else None,
    )


def _train_on_jax(fn_args, config: TrainerConfig, features: FeatureSet, moments, tf_transform_output):
    """Fits the model on Keras' JAX backend in a child process, then rebuilds it on TensorFlow with the
    trained weights and checks the two agree (keel.executors.training.jax_backend)."""
    keras.utils.set_random_seed(config.seed)
    model = build_user_model(config, features)
    with tempfile.TemporaryDirectory(prefix="keel-jax-") as work:
        initial = None
        borrowed = _warm_start(model, fn_args)
        if borrowed:
            initial = str(Path(work) / "initial.weights.h5")
            model.save_weights(initial)
        job = {
            "config": encode(config),
            "features": dataclasses.asdict(features),
            "moments": list(moments) if moments else None,
            "train_files": list(fn_args.train_files),
            "eval_files": list(fn_args.eval_files),
            "transform_output": fn_args.transform_output,
            "train_steps": fn_args.train_steps,
            "eval_steps": fn_args.eval_steps,
            "batch_size": config.batch_size,
            "precision": config.precision,
            "initial_weights": initial,
            "model_run_dir": fn_args.model_run_dir,
        }
        run = train_on_jax(job, Path(work))
        print("    Trainer: validation " + ", ".join(f"{k} {v:.4f}" for k, v in run.validation.items()), flush=True)
        tensorboard.write_validation(fn_args.model_run_dir, fn_args.train_steps, run.validation)
        keras.utils.set_random_seed(config.seed)
        with dtype_policy(run.record["precision"]):
            model = compile_model(scaled(build_user_model(config, features), moments), config, jit_compile=False)
        model.load_weights(str(run.weights))
        agreement = check_agreement(model, run.agreement)
    record = {**run.record, "agreement": agreement, "seconds": round(run.seconds, 2)}
    print(f"    Trainer: {describe_record(record)}", flush=True)
    return (
        model,
        {
            "train": run.train,
            "validation": run.validation,
            "warm_start": borrowed,
        },
        record,
        None,
    )
