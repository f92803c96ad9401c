"""The SavedModel keel writes: the Keras model and the TFT graph behind three signatures.

- `serving_default`: serialized tf.Example protos (`examples`, string [batch]) -> probabilities
  and class names. What TF Serving clients and TFMA call.
- `serving_raw`: one dense tensor [batch] per raw feature -> the same outputs. Float columns are
  float32, integer columns float64 (exact up to 2^53), text columns strings; a missing value is
  NaN, or "" for text. What apps without tf.Example protos call.
- `transform_features`: serialized tf.Example -> transformed features, label included; TFMA uses
  it to read the encoded label.

Both serving signatures run the same TFT graph, so training and serving preprocessing cannot
diverge. The module tracks the Keras variables' underlying tf.Variables directly: without that,
TF1-style loaders (tfx_bsl's RunInference loads SavedModels in a TF1 Session) and the TFLite
converter ("ReadVariableOp missing attribute 'value'") cannot find them.
"""

import tensorflow as tf

from keel.data.features import FeatureSet

OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_CLASSES = "classes"


def raw_dtype(dtype: tf.DType) -> tf.DType:
    """The dtype `serving_raw` takes for a column stored as `dtype`."""
    if dtype == tf.string:
        return tf.string
    return tf.float64 if dtype.is_integer else tf.float32


class ServingModule(tf.Module):
    """A tf.Module holding the model, the TFT layer and the signature functions."""

    def __init__(self, model, tft_layer, features: FeatureSet, raw_feature_spec: dict):
        super().__init__()
        self.model = model
        self.tft_layer = tft_layer
        self.keras_variables = [v.value for v in model.variables]
        self._features = features
        self._raw_spec = raw_feature_spec
        self._inputs = {n: raw_feature_spec[n] for n in features.raw_inputs}
        self._classes = tf.constant(features.label_vocabulary)

    def _predict(self, raw: dict) -> dict:
        transformed = self.tft_layer(raw)
        inputs = {name: transformed[name] for name in self._features.names}
        # float32 whatever the training precision: a mixed-precision model computes in (b)float16.
        probabilities = tf.cast(self.model(inputs, training=False), tf.float32)
        classes = tf.gather(self._classes, tf.argmax(probabilities, axis=-1))
        return {OUTPUT_PROBABILITIES: probabilities, OUTPUT_CLASSES: classes}

    def _from_dense(self, name: str, x):
        """Puts a dense [batch] input into the form the TFT graph was traced with."""
        spec = self._inputs[name]
        x = tf.reshape(x, [-1, 1])
        present = tf.not_equal(x, "") if x.dtype == tf.string else tf.logical_not(tf.math.is_nan(x))
        if x.dtype != spec.dtype:
            x = tf.cast(x, spec.dtype)
        if isinstance(spec, tf.io.FixedLenFeature):
            return x
        indices = tf.where(present)
        return tf.SparseTensor(indices, tf.gather_nd(x, indices), tf.shape(x, out_type=tf.int64))

    def signatures(self) -> dict:
        spec_without_label = self._inputs

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve_examples(examples):
            return self._predict(tf.io.parse_example(examples, spec_without_label))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def transform_features(examples):
            return self.tft_layer(tf.io.parse_example(examples, self._raw_spec))

        def serve_raw(**features):
            return self._predict({n: self._from_dense(n, features[n]) for n in features})

        raw_signature = {n: tf.TensorSpec([None], raw_dtype(s.dtype), name=n) for n, s in self._inputs.items()}
        return {
            "serving_default": serve_examples.get_concrete_function(),
            "serving_raw": tf.function(serve_raw).get_concrete_function(**raw_signature),
            "transform_features": transform_features.get_concrete_function(),
        }


def save_serving_model(model, tf_transform_output, features: FeatureSet, export_dir: str) -> None:
    """Writes the SavedModel with keel's three signatures to `export_dir`."""
    module = ServingModule(
        model, tf_transform_output.transform_features_layer(), features, tf_transform_output.raw_feature_spec()
    )
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
