"""User code of the raw TFX penguin pipeline: Transform's preprocessing_fn and Trainer's run_fn.

Written the way a TFX 1.16 user writes a module file (one file for both components, as in TFX's
penguin example), reproducing what keel does for pipelines/penguin.toml: numerics z-scored over
the training split with missing values imputed with the mean, vocabularies for the strings, the
label as a class index, models/tabular.py's network, and a SavedModel whose serving signature
carries the TFT graph. Hyperparameters arrive through the Trainer's custom_config, so changing
one re-runs only the Trainer and what follows it.
"""

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

LABEL = "species"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


def _dense(x, default):
    """[batch, 1] dense from a dense feature or a sparse one (a column with missing values)."""
    if isinstance(x, tf.SparseTensor):
        x = tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1]))
        return tf.sparse.to_dense(x, default_value=default)
    return tf.reshape(x, [-1, 1])


def preprocessing_fn(inputs):
    outputs = {}
    for name in NUMERIC:
        x = inputs[name]
        x = (
            tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
            if isinstance(x, tf.SparseTensor)
            else tf.cast(x, tf.float32)
        )
        values = x.values if isinstance(x, tf.SparseTensor) else x
        mean, std = tft.mean(values), tf.sqrt(tft.var(values))
        outputs[name] = (_dense(x, mean) - mean) / tf.where(std > 0, std, tf.ones_like(std))
    for name in CATEGORICAL:
        outputs[name] = tft.compute_and_apply_vocabulary(
            _dense(inputs[name], ""), num_oov_buckets=1, vocab_filename=name
        )
    outputs[LABEL] = tft.compute_and_apply_vocabulary(_dense(inputs[LABEL], ""), vocab_filename=LABEL, default_value=-1)
    return outputs


def _build_model(hidden, categorical_sizes, num_classes):
    """models/tabular.py's network: one-hot categoricals, concatenated with numerics, then an MLP."""
    inputs = {n: keras.Input(shape=(1,), name=n, dtype="float32") for n in NUMERIC}
    encoded = list(inputs.values())
    for name, size in categorical_sizes.items():
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="int64")
        encoded.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(inputs[name]))
    x = keras.layers.Concatenate()(encoded)
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs=inputs, outputs=keras.layers.Dense(num_classes, activation="softmax")(x))


def _dataset(files, data_accessor, tf_transform_output, batch_size):
    dataset = data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL),
        tf_transform_output.transformed_metadata.schema,
    )
    return dataset.map(lambda x, y: ({n: x[n] for n in NUMERIC + CATEGORICAL}, y)).repeat()


class _Serving(tf.Module):
    """The model and the TFT layer; Keras 3 variables are tracked directly so TF1 loaders find them."""

    def __init__(self, model, tf_transform_output, classes):
        super().__init__()
        self.model = model
        self.tft_layer = tf_transform_output.transform_features_layer()
        self.keras_variables = [v.value for v in model.variables]
        self._raw_spec = tf_transform_output.raw_feature_spec()
        self._classes = tf.constant(classes)

    def signatures(self):
        serving_spec = {n: s for n, s in self._raw_spec.items() if n != LABEL}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve_examples(examples):
            transformed = self.tft_layer(tf.io.parse_example(examples, serving_spec))
            probabilities = self.model({n: transformed[n] for n in NUMERIC + CATEGORICAL}, training=False)
            return {
                "probabilities": probabilities,
                "classes": tf.gather(self._classes, tf.argmax(probabilities, axis=-1)),
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def transform_features(examples):
            return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

        return {
            "serving_default": serve_examples.get_concrete_function(),
            "transform_features": transform_features.get_concrete_function(),
        }


def run_fn(fn_args):
    """TFX Trainer entry point."""
    config = fn_args.custom_config
    keras.utils.set_random_seed(config["seed"])
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    classes = [c.decode() for c in tf_transform_output.vocabulary_by_name(LABEL)]
    sizes = {n: tf_transform_output.vocabulary_size_by_name(n) + 1 for n in CATEGORICAL}
    model = _build_model(config["hidden"], sizes, len(classes))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, config["batch_size"])
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, config["batch_size"])
    model.fit(train, epochs=1, steps_per_epoch=fn_args.train_steps, verbose=0)
    model.evaluate(evaluation, steps=fn_args.eval_steps, verbose=0)
    module = _Serving(model, tf_transform_output, classes)
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures=module.signatures())
