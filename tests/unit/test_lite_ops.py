"""The operators of a .tflite model, and the gate's refusal of Select TF (Flex) ops, on real conversions."""

import numpy as np
import pytest
import tensorflow as tf

from keel.core.errors import ExportError
from keel.export.ops import model_ops, refuse_flex
from keel.export.parity import Measurement, measure_variant


def converted(function, select_tf_ops: bool = False) -> bytes:
    concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


@tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
def doubled(x):
    return x * 2.0 + 1.0


@tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
def as_text(x):
    return tf.strings.as_string(x)


def test_builtin_ops_are_named():
    assert model_ops(converted(doubled)) == ["ADD", "MUL"]


def test_a_model_with_a_flex_op_is_refused_by_name():
    content = converted(as_text, select_tf_ops=True)
    assert "FlexAsString" in model_ops(content)
    with pytest.raises(ExportError, match=r"^int8: needs Select TF ops \(FlexAsString\), which LiteRT on Android"):
        refuse_flex("int8", model_ops(content))
    with pytest.raises(ExportError, match="FlexAsString"):
        reference = Measurement("savedmodel", passed=True)
        measure_variant("float32", content, {"x": np.zeros(3, np.int64)}, np.zeros(3), np.zeros((3, 1)), reference, 1)


def test_builtin_only_ops_pass():
    refuse_flex("float32", ["ADD", "HASHTABLE_FIND"])
