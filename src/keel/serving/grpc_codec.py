"""TF Serving's gRPC messages to numpy and back: TensorProto inputs, tf.Example inputs, results.

Inputs are read as `tf.make_ndarray` would (keel.serving.tensors) and checked against the
signature: every input present and no other, a shape the signature accepts, one batch size across
inputs, and a dtype that is the signature's or converts to it without loss (int32 or float32 to
float64; TF Serving itself takes only the exact dtype). Infinity is refused naming the input, as over REST: keel's models are
trained on finite data only. NaN is taken: it is how a TensorProto says a number is missing, as
`null` does in REST. Outputs are written as `tf.make_tensor_proto` would. A request that does not
fit raises `codec.RequestError`, as a REST body that does not fit does; the server answers it
with INVALID_ARGUMENT.
"""

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from keel.serving import tensors
from keel.serving.codec import RequestError, classifications, regressions

MAX_ELEMENTS = 1 << 22  # per input tensor: a TensorProto may declare a shape far larger than the values it sends


def to_array(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The numpy value of input `name`'s TensorProto (strings as an object array of bytes)."""
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise RequestError(f"input {name!r}: shape {dims} has a negative dimension")
    if math.prod(dims) > MAX_ELEMENTS:
        raise RequestError(f"input {name!r}: shape {dims} is over the limit of {MAX_ELEMENTS} elements per input")
    try:
        return tensors.to_ndarray(proto, dims)
    except (TypeError, ValueError) as e:
        raise RequestError(
            f"input {name!r}: not a readable {_dtype_name(proto.dtype)} tensor of shape {dims}: {e}"
        ) from None
    except KeyError:  # a dtype with no numpy form (DT_RESOURCE, DT_VARIANT): make_ndarray's lookup fails
        raise RequestError(
            f"input {name!r}: a {_dtype_name(proto.dtype)} tensor holds no values a request can send"
        ) from None


def _dtype_name(dtype: int) -> str:
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"dtype {dtype}"


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """The TensorProto of an output array."""
    proto = tensor_pb2.TensorProto()
    tensors.fill(proto, array)
    return proto


def _typed(name: str, array: np.ndarray, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        if array.dtype != object:
            raise RequestError(f"input {name!r}: the signature takes string, got {array.dtype.name}")
        return array
    target = np.dtype(dtype.as_numpy_dtype)
    if array.dtype != target and not (array.dtype.kind in "iuf" and np.can_cast(array.dtype, target, "safe")):
        got = "string" if array.dtype == object else array.dtype.name
        raise RequestError(
            f"input {name!r}: the signature takes {dtype.name}, got {got}, which does not convert without loss"
        )
    if array.dtype.kind == "f" and np.isinf(array).any():
        raise RequestError(
            f"input {name!r}: holds infinity; keel's models take finite numbers only (NaN is a missing value)"
        )
    return array.astype(target, copy=False)


def signature_arrays(inputs, specs: dict[str, tf.TensorSpec]) -> tuple[dict[str, np.ndarray], int]:
    """A PredictRequest's `inputs` map as typed arrays for a signature's inputs, and the batch size."""
    takes = ", ".join(sorted(specs))
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise RequestError(f"missing input {missing[0]!r}; the signature takes: {takes}")
    extra = sorted(set(inputs) - set(specs))
    if extra:
        raise RequestError(f"unknown input {extra[0]!r}; the signature takes: {takes}")
    arrays = {}
    for name, spec in specs.items():
        array = _typed(name, to_array(name, inputs[name]), spec.dtype)
        if not spec.shape.is_compatible_with(array.shape):
            expected = (
                [d if d is not None else -1 for d in spec.shape.as_list()] if spec.shape.rank is not None else "any"
            )
            raise RequestError(f"input {name!r}: shape {list(array.shape)} does not fit the signature's {expected}")
        arrays[name] = array
    batches = {name: a.shape[0] for name, a in arrays.items() if a.ndim > 0}
    if len(set(batches.values())) > 1:
        sizes = ", ".join(f"{n}: {b}" for n, b in sorted(batches.items()))
        raise RequestError(f"the inputs have different batch sizes ({sizes}); every input needs the same")
    rows = next(iter(batches.values()), 1)
    if rows == 0:
        raise RequestError("the inputs have no rows; send at least one")
    return arrays, rows


def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """The tf.Examples of a Classify or Regress request, serialized, as TF Serving feeds them.

    With `example_list_with_context` the context is serialized before each example, so the
    example's own features win where both have one (protobuf's merge of concatenated messages).
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        context = listed.context.SerializeToString()
        serialized = [context + e.SerializeToString() for e in listed.examples]
    else:
        serialized = []
    if not serialized:
        raise RequestError("the request's input holds no examples; send example_list or example_list_with_context")
    return np.array(serialized, dtype=object)


def classification_result(outputs: dict[str, np.ndarray], rows: int) -> classification_pb2.ClassificationResult:
    """A ClassificationResult from a classify signature's `classes` and/or `scores` [batch, classes]."""
    result = classification_pb2.ClassificationResult()
    for row in classifications(outputs, rows):
        found = result.classifications.add()
        for label, score in row:
            found.classes.add(label=label, score=score)
    return result


def regression_result(outputs: dict[str, np.ndarray], rows: int) -> regression_pb2.RegressionResult:
    """A RegressionResult from a regress signature's `outputs`, [batch] or [batch, 1]."""
    result = regression_pb2.RegressionResult()
    for value in regressions(outputs, rows):
        result.regressions.add(value=value)
    return result
