"""keel.serving.tensors gives exactly what TensorFlow's make_ndarray / make_tensor_proto give."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from keel.serving import tensors

ARRAYS = [
    np.array([[1.5, -2.0], [3.25, np.nan]], np.float32),
    np.array([1e300, -0.0], np.float64),
    np.array([[1, -2, 3]], np.int32),
    np.array([2**62, -(2**62)], np.int64),
    np.array([b"Adelie", b"", "é".encode()], dtype=object),
    np.array([True, False]),
    np.zeros([0, 3], np.float32),
    np.array(7.0, np.float32),
]


def dims(proto: tensor_pb2.TensorProto) -> list[int]:
    return [d.size for d in proto.tensor_shape.dim]


@pytest.mark.parametrize("values", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_fill_writes_what_make_tensor_proto_writes(values):
    proto = tensor_pb2.TensorProto()
    tensors.fill(proto, values)
    expected = tf.make_tensor_proto(values)
    assert proto.dtype == expected.dtype and dims(proto) == dims(expected)
    np.testing.assert_array_equal(tf.make_ndarray(proto), tf.make_ndarray(expected))


@pytest.mark.parametrize("values", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_to_ndarray_reads_what_make_ndarray_reads(values):
    proto = tf.make_tensor_proto(values)
    read = tensors.to_ndarray(proto, dims(proto))
    expected = tf.make_ndarray(proto)
    assert read.dtype == expected.dtype and read.shape == expected.shape
    np.testing.assert_array_equal(read, expected)


@pytest.mark.parametrize(
    "field, dtype, values",
    [
        ("float_val", tf.float32, [1.0, 2.5, 3.0]),
        ("double_val", tf.float64, [1.0, 2.0, 3.0]),
        ("int_val", tf.int32, [4, 5, 6]),
        ("int64_val", tf.int64, [7, 8, 9]),
        ("string_val", tf.string, [b"a", b"b", b"c"]),
    ],
)
def test_to_ndarray_reads_the_repeated_fields_clients_write(field, dtype, values):
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    proto.tensor_shape.dim.add(size=3)
    getattr(proto, field).extend(values)
    np.testing.assert_array_equal(tensors.to_ndarray(proto, [3]), tf.make_ndarray(proto))


def test_the_short_form_with_fewer_values_than_the_shape_is_tensorflows():
    """A TensorProto may send fewer values than its shape holds; TensorFlow repeats the last one."""
    proto = tensor_pb2.TensorProto(dtype=tf.float32.as_datatype_enum, float_val=[1.0, 2.0])
    proto.tensor_shape.dim.add(size=4)
    np.testing.assert_array_equal(tensors.to_ndarray(proto, [4]), tf.make_ndarray(proto))
    assert tensors.to_ndarray(proto, [4]).tolist() == [1.0, 2.0, 2.0, 2.0]
