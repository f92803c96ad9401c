"""numpy arrays to TensorProto and back, as `tf.make_tensor_proto` and `tf.make_ndarray` do, for the
dtypes requests and answers carry, at a fraction of their cost.

Both TensorFlow functions are general and slow for small tensors (tens of microseconds each, measured
as a fifth of the gRPC server's Python time on one-row requests). These fast paths cover numbers and
strings whose values are all present; anything else (other dtypes, the repeated-last-value short form,
half floats) goes to TensorFlow's own function, so the results are always TensorFlow's.
"""

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

_VALUE_FIELDS = {  # dtype -> (the repeated field its values may be in, numpy dtype)
    types_pb2.DT_FLOAT: ("float_val", np.float32),
    types_pb2.DT_DOUBLE: ("double_val", np.float64),
    types_pb2.DT_INT32: ("int_val", np.int32),
    types_pb2.DT_INT64: ("int64_val", np.int64),
    types_pb2.DT_STRING: ("string_val", object),
}


def to_ndarray(proto: tensor_pb2.TensorProto, dims: list[int]) -> np.ndarray:
    """The numpy value of `proto`, whose shape is `dims` (strings as an object array of bytes)."""
    known = _VALUE_FIELDS.get(proto.dtype)
    if known is not None:
        field, dtype = known
        count = math.prod(dims)
        if dtype is not object and proto.tensor_content:
            if len(proto.tensor_content) == count * np.dtype(dtype).itemsize:
                return np.frombuffer(proto.tensor_content, dtype).reshape(dims)
        else:
            values = getattr(proto, field)
            if len(values) == count:
                return np.array(values, dtype=dtype).reshape(dims)
    return tf.make_ndarray(proto)


def fill(proto: tensor_pb2.TensorProto, values: np.ndarray) -> None:
    """Writes `values` into an empty TensorProto as `tf.make_tensor_proto` would."""
    for size in values.shape:
        proto.tensor_shape.dim.add(size=size)
    if values.dtype == object:
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(values.reshape(-1).tolist())
    else:
        proto.dtype = tf.as_dtype(values.dtype).as_datatype_enum
        proto.tensor_content = np.ascontiguousarray(values).tobytes()
