"""Keras 3's `fit` and `evaluate` under MultiWorkerMirroredStrategy across processes.

Keras 3 (3.6 and 3.15 alike, the versions keel's locks pin) cannot fit a model under
MultiWorkerMirroredStrategy once the cluster has more than one worker (keras-team/keras#20585):

- `TensorFlowTrainer._maybe_symbolic_build` averages the first batch, a nested structure, with one
  `strategy.reduce`, which the collective strategy does not take ("Attempt to convert a value
  (PerReplica ...) to a Tensor");
- `reduce_per_replica` averages each scalar log with `strategy.reduce("MEAN", v, axis=0)`, and a
  scalar has no axis 0 ("Invalid reduction dimension 0 for input with 0 dimensions").

`prepare` works around both without touching how the model trains: the model forgets the strategy it
was built under, so Keras builds its metrics when the training step is first traced (its path with no
strategy), and the caller fits inside the strategy's scope, so every step still runs on every replica
and gradients are still all-reduced across workers; scalar logs are averaged across workers with
`axis=None`. Measured: the two processes end with identical weights.
"""

import keras
import tensorflow as tf

_patched = False


def _reduce_logs_per_replica(original):
    from keras.src.backend.tensorflow import trainer

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    return reduce_per_replica


def prepare(model: keras.Model) -> keras.Model:
    """Makes `model` fit and evaluate under a multi-worker strategy; call `fit`/`evaluate` inside its scope."""
    global _patched
    from keras.src.backend.tensorflow import trainer

    if not _patched and hasattr(trainer, "reduce_per_replica"):
        trainer.reduce_per_replica = _reduce_logs_per_replica(trainer.reduce_per_replica)
        _patched = True
    model._distribute_strategy = None
    return model


def shard_for_workers(dataset: tf.data.Dataset, file_patterns, workers: int) -> tf.data.Dataset:
    """`dataset` with the sharding tf.data can do for `workers`: by file where every worker gets one,
    else by element (every worker reads all files and keeps its share); tf.data's default fails then."""
    files = sum(len(tf.io.gfile.glob(pattern)) for pattern in file_patterns)
    if files >= workers:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def mean_over_workers(strategy: tf.distribute.Strategy, figures: dict[str, float]) -> dict[str, float]:
    """Each figure averaged over the workers (each computed it on its own shard of equal size).

    Every worker must call this, with the same keys: it is one all-reduce across the cluster.
    """
    names = sorted(figures)
    local = tf.constant([float(figures[name]) for name in names], tf.float64)
    mean = strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(lambda: tf.identity(local)), axis=None)
    return {name: float(value) for name, value in zip(names, mean.numpy(), strict=True)}


def wait_for_every_worker(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker has called it (an all-reduce of one number)."""
    strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)
