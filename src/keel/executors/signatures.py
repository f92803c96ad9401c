"""The SavedModel keel writes: the Keras model and the TFT graph behind four signatures.

- `serving_default`: serialized tf.Example protos (`examples`, string [batch]) -> for classification
  `probabilities` [batch, classes] and `classes` (the likeliest class's name) [batch]; for regression
  `predictions` [batch]. What TF Serving Predict clients and TFMA call.
- `serving_raw`: one dense tensor [batch] per raw feature -> the same outputs. Float columns are
  float32, integer columns float64 (exact up to 2^53), text columns strings; a missing value is
  NaN, or "" for text. What apps without tf.Example protos call.
- `classify` (classification) or `regress` (regression): TF Serving's Classify / Regress signature,
  method name tensorflow/serving/classify or /regress, input `inputs` (serialized tf.Example); outputs
  `classes` and `scores` [batch, classes], or `outputs` [batch]. What the Classify and Regress APIs call.
- `transform_features`: serialized tf.Example -> transformed features, label included; TFMA uses
  it to read the encoded label. It parses only the model's raw inputs and the label.
- `serving_encoded` (keel's default transform, with categorical features or pictures): the numeric
  raw features as in `serving_raw`, each categorical feature as its vocabulary index (int64 [batch],
  the index the transform gives it), each picture decoded (uint8 [batch, height, width, channels],
  at the transform's size) -> the same outputs. The TFT graph runs on the numeric features only, so
  this signature holds no vocabulary lookup and no picture decoder: the mobile export
  (keel.export.mobile) puts the vocabularies in front of it as constant tables, which LiteRT runs,
  and takes pictures as a camera pipeline gives them.

Both serving signatures run the same TFT graph, so training and serving preprocessing cannot
diverge. The module tracks the Keras variables' underlying tf.Variables directly: without that,
TF1-style loaders (tfx_bsl's RunInference loads SavedModels in a TF1 Session) and the TFLite
converter ("ReadVariableOp missing attribute 'value'") cannot find them.
"""

from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keel.data.features import FeatureSet
from keel.executors.transform import scale_pixels

OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_CLASSES = "classes"
OUTPUT_PREDICTIONS = "predictions"
RAW_SIGNATURE, ENCODED_SIGNATURE = "serving_raw", "serving_encoded"
CLASSIFY_SIGNATURE, CLASSIFY_METHOD = "classify", "tensorflow/serving/classify"
REGRESS_SIGNATURE, REGRESS_METHOD = "regress", "tensorflow/serving/regress"


def raw_dtype(dtype: tf.DType) -> tf.DType:
    """The dtype `serving_raw` takes for a column stored as `dtype`."""
    if dtype == tf.string:
        return tf.string
    return tf.float64 if dtype.is_integer else tf.float32


class ServingModule(tf.Module):
    """A tf.Module holding the model, the TFT layer and the signature functions."""

    def __init__(self, model, tft_layer, features: FeatureSet, raw_feature_spec: dict, encoded: bool = False):
        super().__init__()
        self._encoded = encoded
        self.model = model
        self.tft_layer = tft_layer
        self.keras_variables = [v.value for v in model.variables]
        self._features = features
        self._inputs = {n: raw_feature_spec[n] for n in features.raw_inputs}
        # What transform_features parses: the model's raw inputs and the label, not every column of the
        # training data, so examples without a column the model never reads (logged requests exported as
        # a new span carry only what clients sent) still evaluate against this model as a baseline.
        self._transform_inputs = {n: raw_feature_spec[n] for n in [*features.raw_inputs, features.label]}
        self._classes = tf.constant(features.label_vocabulary or [""])
        self._regression = features.task == "regression"

    def _outputs(self, raw: dict, encoded: dict | None = None):
        """The model's outputs for parsed raw features; `encoded` holds model inputs made without TFT."""
        encoded = encoded or {}
        transformed = self.tft_layer(raw) if raw else {}
        inputs = {name: transformed[name] for name in self._features.names if name not in encoded}
        inputs.update(encoded)
        # float32 whatever the training precision: a mixed-precision model computes in (b)float16.
        return tf.cast(self.model(inputs, training=False), tf.float32)

    def _predict(self, raw: dict, encoded: dict | None = None) -> dict:
        outputs = self._outputs(raw, encoded)
        if self._regression:
            return {OUTPUT_PREDICTIONS: tf.reshape(outputs, [-1])}
        classes = tf.gather(self._classes, tf.argmax(outputs, axis=-1))
        return {OUTPUT_PROBABILITIES: outputs, OUTPUT_CLASSES: classes}

    def _from_dense(self, name: str, x):
        """Puts a dense [batch] input into the form the TFT graph was traced with.

        A number is missing when NaN, tested as `x != x` in float32 and gathered after the cast to the
        column's dtype: LiteRT has no IsNan kernel and no float64 comparison or gather, and the mobile
        export (keel.export.mobile) runs this function.
        """
        spec = self._inputs[name]
        x = tf.reshape(x, [-1, 1])
        if x.dtype == tf.string:
            present = tf.not_equal(x, "")
        else:
            as_float = tf.cast(x, tf.float32) if x.dtype != tf.float32 else x
            present = tf.equal(as_float, as_float)
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
            return self.tft_layer(tf.io.parse_example(examples, self._transform_inputs))

        def serve_raw(**features):
            return self._predict({n: self._from_dense(n, features[n]) for n in features})

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(inputs):
            scores = self._outputs(tf.io.parse_example(inputs, spec_without_label))
            classes = tf.tile(self._classes[tf.newaxis, :], [tf.shape(scores)[0], 1])
            return {"classes": classes, "scores": scores}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(inputs):
            return {"outputs": tf.reshape(self._outputs(tf.io.parse_example(inputs, spec_without_label)), [-1])}

        def serve_encoded(**features):
            categorical, images = self._features.categorical, self._features.images
            raw = {n: self._from_dense(n, x) for n, x in features.items() if n not in categorical and n not in images}
            encoded = {n: tf.reshape(x, [-1, 1]) for n, x in features.items() if n in categorical}
            encoded.update({n: scale_pixels(x) for n, x in features.items() if n in images})
            return self._predict(raw, encoded)

        raw_signature = {n: tf.TensorSpec([None], raw_dtype(s.dtype), name=n) for n, s in self._inputs.items()}
        signatures = {
            "serving_default": serve_examples.get_concrete_function(),
            RAW_SIGNATURE: tf.function(serve_raw).get_concrete_function(**raw_signature),
            "transform_features": transform_features.get_concrete_function(),
        }
        if self._encoded:
            encoded_signature = {
                n: tf.TensorSpec([None], tf.int64, name=n) if n in self._features.categorical else spec
                for n, spec in raw_signature.items()
            }
            for n, shape in self._features.images.items():
                encoded_signature[n] = tf.TensorSpec([None, *shape], tf.uint8, name=n)
            signatures[ENCODED_SIGNATURE] = tf.function(serve_encoded).get_concrete_function(**encoded_signature)
        if self._regression:
            signatures[REGRESS_SIGNATURE] = regress.get_concrete_function()
        else:
            signatures[CLASSIFY_SIGNATURE] = classify.get_concrete_function()
        return signatures


def set_method_names(export_dir: str, methods: dict[str, str]) -> None:
    """Gives signatures TF Serving's method names (tf.saved_model.save writes every one as predict)."""
    path = Path(export_dir) / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved.meta_graphs:
        for name, method in methods.items():
            if name in meta_graph.signature_def:
                meta_graph.signature_def[name].method_name = method
    path.write_bytes(saved.SerializeToString())


def save_serving_model(
    model, tf_transform_output, features: FeatureSet, export_dir: str, default_transform: bool = True
) -> None:
    """Writes the SavedModel with keel's signatures to `export_dir`.

    `default_transform`: the features went through keel's default transform, so each categorical
    feature is the vocabulary index of its raw column and `serving_encoded` can be written."""
    module = ServingModule(
        model,
        tf_transform_output.transform_features_layer(),
        features,
        tf_transform_output.raw_feature_spec(),
        encoded=default_transform and bool(features.categorical or features.images),
    )
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    set_method_names(export_dir, {CLASSIFY_SIGNATURE: CLASSIFY_METHOD, REGRESS_SIGNATURE: REGRESS_METHOD})
