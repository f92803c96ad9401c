"""The Transform step: the user's `preprocessing_fn`, or keel's default derived from the spec.

The default z-scores numeric features (missing values imputed with the mean, so they become 0),
encodes categorical features with a vocabulary (missing is its own value, unseen values share one
out-of-vocabulary index), decodes pictures (PNG or JPEG bytes) to float32 [height, width, channels]
in [0, 1], and encodes a classification label as a class index; a regression label passes
through as float32, with LABEL_WEIGHT beside it (0 where the label is missing: the Trainer leaves such
rows out and TFMA gives them no weight). TFX calls `preprocessing_fn`
with the Transform component's `custom_config`, a TransformConfig that carries only what the
transform depends on, so a training-only change in the spec leaves Transform cached.
"""

import tensorflow as tf
import tensorflow_transform as tft

from keel.core.modules import load_module
from keel.data.features import LABEL_VOCABULARY, LABEL_WEIGHT, dtype_kind, split_features
from keel.pipeline.config import TransformConfig, decode


def _dense(x, default):
    """A [batch, 1] dense tensor from a dense or at-most-one-value sparse feature."""
    if isinstance(x, tf.SparseTensor):
        shaped = tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1]))
        return tf.sparse.to_dense(shaped, default_value=default)
    return tf.reshape(x, [-1, 1])


def _values(x):
    return x.values if isinstance(x, tf.SparseTensor) else x


def _as_string(x):
    if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, _as_string(x.values), x.dense_shape)
    return x if x.dtype == tf.string else tf.strings.as_string(x)


def _as_float(x):
    if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    return tf.cast(x, tf.float32)


def zscore(x):
    """Z-scores a numeric feature over the training data; a missing value becomes 0 (the mean)."""
    x = _as_float(x)
    values = _values(x)
    mean = tft.mean(values)
    std = tf.sqrt(tft.var(values))
    safe_std = tf.where(std > 0, std, tf.ones_like(std))
    return (_dense(x, mean) - mean) / safe_std


def encode_categorical(x, name: str):
    """Vocabulary-encodes a string or integer feature; writes the vocabulary file `name`."""
    return tft.compute_and_apply_vocabulary(_dense(_as_string(x), ""), num_oov_buckets=1, vocab_filename=name)


def scale_pixels(pixels):
    """uint8 pixels [batch, height, width, channels] -> float32 in [0, 1]: what the model sees."""
    return tf.cast(pixels, tf.float32) / 255.0


def decode_pictures(x, shape):
    """Encoded pictures (PNG or JPEG bytes) -> float32 [batch, *shape] in [0, 1], resized to shape[:2].

    A missing picture ("") is all zeros, as a missing number is the mean: serving's warm-up call and
    requests without the column still get an answer."""
    height, width, channels = shape

    def decode(content):
        def pixels():
            decoded = tf.io.decode_image(content, channels=channels, expand_animations=False)
            return tf.image.resize(decoded, [height, width])

        resized = tf.cond(tf.equal(content, ""), lambda: tf.zeros([height, width, channels]), pixels)
        return tf.ensure_shape(resized, [height, width, channels])

    content = tf.reshape(_dense(x, ""), [-1])
    resized = tf.map_fn(decode, content, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
    return scale_pixels(resized)


def encode_label(x):
    """Encodes the label as a class index (-1 for a class unseen in training)."""
    return tft.compute_and_apply_vocabulary(
        _dense(_as_string(x), ""), vocab_filename=LABEL_VOCABULARY, default_value=-1
    )


def pass_label(x, label: str) -> dict:
    """A regression label as float32 [batch, 1] and its LABEL_WEIGHT: 1 where present, 0 (label 0) where missing."""
    value = _dense(_as_float(x), float("nan"))
    present = tf.logical_not(tf.math.is_nan(value))
    return {label: tf.where(present, value, tf.zeros_like(value)), LABEL_WEIGHT: tf.cast(present, tf.float32)}


def default_preprocessing_fn(
    inputs: dict,
    label: str,
    numeric: list[str],
    categorical: list[str],
    task: str = "classification",
    image: str | None = None,
    image_shape: tuple[int, ...] = (),
) -> dict:
    """keel's transform: z-scored numbers, vocabulary-encoded categories, decoded pictures, the label as
    the task needs it."""
    kinds = {name: dtype_kind(t.dtype) for name, t in inputs.items() if name != image}
    numeric, categorical = split_features(kinds, label, numeric, categorical)
    outputs = {name: zscore(inputs[name]) for name in numeric}
    if image is not None:
        outputs[image] = decode_pictures(inputs[image], image_shape)
    outputs.update({name: encode_categorical(inputs[name], name) for name in categorical})
    if task == "regression":
        outputs.update(pass_label(inputs[label], label))
    else:
        outputs[label] = encode_label(inputs[label])
    return outputs


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """TFX entry point (Transform's `preprocessing_fn=` names this function)."""
    config = decode(TransformConfig, custom_config)
    if config.preprocessing_module is not None:
        return load_module(config.preprocessing_module).preprocessing_fn(inputs)
    return default_preprocessing_fn(
        inputs,
        config.label,
        list(config.numeric),
        list(config.categorical),
        config.task,
        config.image,
        tuple(config.image_shape),
    )
