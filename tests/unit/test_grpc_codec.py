"""The gRPC codec: TensorProto <-> numpy, inputs checked against a signature, tf.Examples, results."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import input_pb2

from keel.serving.codec import RequestError
from keel.serving.grpc_codec import (
    MAX_ELEMENTS,
    classification_result,
    regression_result,
    serialized_examples,
    signature_arrays,
    to_array,
    to_proto,
)

SIGNATURE = {
    "island": tf.TensorSpec([None], tf.string),
    "bill_length_mm": tf.TensorSpec([None], tf.float32),
    "body_mass_g": tf.TensorSpec([None], tf.float64),
}


def protos(**columns) -> dict[str, tensor_pb2.TensorProto]:
    return {name: tf.make_tensor_proto(values) for name, values in columns.items()}


@pytest.mark.parametrize(
    "values",
    [
        np.array([1.5, -2.0, np.nan], dtype=np.float32),
        np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float64),
        np.array([3, -7, 2**40], dtype=np.int64),
        np.array([[1], [2]], dtype=np.int32),
        np.array([b"Biscoe", b"", "Dr\u00e9am".encode()], dtype=object),
        np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object),
    ],
)
def test_arrays_survive_a_trip_through_tensor_proto(values):
    proto = to_proto(values)
    assert [d.size for d in proto.tensor_shape.dim] == list(values.shape)
    back = to_array("x", tensor_pb2.TensorProto.FromString(proto.SerializeToString()))
    assert back.dtype == values.dtype and back.shape == values.shape
    np.testing.assert_array_equal(back, values)


def test_a_tensor_in_value_fields_reads_like_one_in_tensor_content():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0, 3.0])
    proto.tensor_shape.dim.add(size=3)
    np.testing.assert_array_equal(to_array("x", proto), np.array([1, 2, 3], dtype=np.float32))


def test_inputs_are_typed_for_the_signature_and_give_the_batch_size():
    arrays, rows = signature_arrays(
        protos(island=[b"Biscoe", b"Dream"], bill_length_mm=[39.1, 40.0], body_mass_g=[3750, 4000]), SIGNATURE
    )
    assert rows == 2
    assert arrays["island"].tolist() == [b"Biscoe", b"Dream"]
    assert arrays["bill_length_mm"].dtype == np.float32
    assert arrays["body_mass_g"].dtype == np.float64  # int32 converts without loss
    assert arrays["body_mass_g"].tolist() == [3750.0, 4000.0]
    missing, _ = signature_arrays(protos(island=[b""], bill_length_mm=[np.nan], body_mass_g=[np.nan]), SIGNATURE)
    assert np.isnan(missing["bill_length_mm"][0]) and np.isnan(missing["body_mass_g"][0])  # NaN: a missing value


@pytest.mark.parametrize(
    "change, message",
    [
        ({"island": None}, "missing input 'island'; the signature takes: bill_length_mm, body_mass_g, island"),
        ({"year": [2007, 2008]}, "unknown input 'year'"),
        ({"island": [1.0, 2.0]}, "input 'island': the signature takes string, got float32"),
        ({"bill_length_mm": np.array([1.0, 2.0])}, "takes float32, got float64, which does not convert without loss"),
        ({"body_mass_g": [b"a", b"b"]}, "takes float64, got string"),
        ({"body_mass_g": [True, False]}, "takes float64, got bool"),
        ({"body_mass_g": [np.inf, 1.0]}, "input 'body_mass_g': holds infinity; keel's models take finite numbers only"),
        ({"bill_length_mm": [1.0, -np.inf]}, "input 'bill_length_mm': holds infinity"),
        ({"island": [[b"a"], [b"b"]]}, "input 'island': shape [2, 1] does not fit the signature's [-1]"),
        ({"island": b"Biscoe"}, "input 'island': shape [] does not fit"),
        ({"island": [b"Biscoe"]}, "different batch sizes (bill_length_mm: 2, body_mass_g: 2, island: 1)"),
    ],
)
def test_inputs_that_do_not_fit_the_signature_say_why(change, message):
    columns = {"island": [b"Biscoe", b"Dream"], "bill_length_mm": [39.1, 40.0], "body_mass_g": [3750.0, 4000.0]}
    columns.update(change)
    with pytest.raises(RequestError) as raised:
        signature_arrays(protos(**{k: v for k, v in columns.items() if v is not None}), SIGNATURE)
    assert message in str(raised.value)


def test_an_empty_batch_is_refused():
    empty = {"x": tf.TensorSpec([None], tf.float32)}
    with pytest.raises(RequestError, match="no rows"):
        signature_arrays({"x": to_proto(np.zeros([0], np.float32))}, empty)


def test_a_declared_shape_far_beyond_the_values_sent_is_refused_before_it_is_filled():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    proto.tensor_shape.dim.add(size=1 << 40)
    with pytest.raises(RequestError, match=f"over the limit of {MAX_ELEMENTS} elements"):
        to_array("x", proto)


@pytest.mark.parametrize(
    "proto, message",
    [
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0\0\0"), "not a readable DT_FLOAT tensor"),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID), "not a readable DT_INVALID tensor"),
        (tensor_pb2.TensorProto(dtype=9999), "not a readable dtype 9999 tensor"),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE), "a DT_RESOURCE tensor holds no values a request"),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_VARIANT), "a DT_VARIANT tensor holds no values a request"),
    ],
)
def test_unreadable_tensors_are_request_errors(proto, message):
    proto.tensor_shape.dim.add(size=2)
    with pytest.raises(RequestError, match=message):
        to_array("x", proto)


def test_a_negative_dimension_is_refused():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=-1)
    with pytest.raises(RequestError, match="negative dimension"):
        to_array("x", proto)


def example(**features) -> tf.train.Example:
    found = tf.train.Example()
    for name, value in features.items():
        if isinstance(value, bytes):
            found.features.feature[name].bytes_list.value.append(value)
        else:
            found.features.feature[name].float_list.value.append(value)
    return found


def test_examples_with_context_carry_the_context_and_their_own_features_win():
    request = input_pb2.Input()
    listed = request.example_list_with_context
    listed.context.CopyFrom(example(island=b"Biscoe", bill_length_mm=1.0))
    listed.examples.append(example(bill_length_mm=39.1))
    listed.examples.append(example(sex=b"male"))
    parsed = [tf.train.Example.FromString(s) for s in serialized_examples(request)]
    assert parsed[0].features.feature["island"].bytes_list.value == [b"Biscoe"]
    assert parsed[0].features.feature["bill_length_mm"].float_list.value == pytest.approx([39.1])
    assert parsed[1].features.feature["bill_length_mm"].float_list.value == [1.0]
    assert parsed[1].features.feature["sex"].bytes_list.value == [b"male"]


def test_a_plain_example_list_is_serialized_in_order_and_an_empty_input_refused():
    request = input_pb2.Input()
    request.example_list.examples.append(example(a=1.0))
    request.example_list.examples.append(example(a=2.0))
    assert [
        tf.train.Example.FromString(s).features.feature["a"].float_list.value[0] for s in serialized_examples(request)
    ] == [1.0, 2.0]
    with pytest.raises(RequestError, match="holds no examples"):
        serialized_examples(input_pb2.Input())


def test_classification_results_pair_labels_with_scores():
    result = classification_result(
        {
            "classes": np.array([[b"Adelie", b"Gentoo"], [b"Adelie", b"Gentoo"]], dtype=object),
            "scores": np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32),
        },
        rows=2,
    )
    assert [[(c.label, round(c.score, 3)) for c in r.classes] for r in result.classifications] == [
        [("Adelie", 0.9), ("Gentoo", 0.1)],
        [("Adelie", 0.2), ("Gentoo", 0.8)],
    ]
    scores_only = classification_result({"scores": np.array([[0.25, 0.75]], dtype=np.float32)}, rows=1)
    assert [(c.label, c.score) for c in scores_only.classifications[0].classes] == [("", 0.25), ("", 0.75)]
    with pytest.raises(ValueError, match=r"'scores' output has shape \[2\]; expected \[2, classes\]"):
        classification_result({"scores": np.array([0.1, 0.2])}, rows=2)


def test_regression_results_take_a_batch_or_a_batch_of_ones():
    assert [r.value for r in regression_result({"outputs": np.array([1.5, 2.5])}, rows=2).regressions] == [1.5, 2.5]
    assert [r.value for r in regression_result({"outputs": np.array([[3.0]])}, rows=1).regressions] == [3.0]
    with pytest.raises(ValueError, match=r"expected \[1\] or \[1, 1\]"):
        regression_result({"outputs": np.array([[1.0, 2.0]])}, rows=1)
