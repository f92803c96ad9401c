"""The serving codec: TF Serving's REST `instances`/`inputs` bodies to typed arrays, and outputs back."""

import base64
import math

import numpy as np
import pytest
import tensorflow as tf

from keel.serving.codec import RequestError, parse_body, render, to_arrays

SIGNATURE = {
    "island": tf.TensorSpec([None], tf.string),
    "bill_length_mm": tf.TensorSpec([None], tf.float32),
    "year": tf.TensorSpec([None], tf.int64),
}
SERIALIZED = {"examples": tf.TensorSpec([None], tf.string)}


def arrays(body: dict, signature: dict = SIGNATURE) -> dict[str, np.ndarray]:
    """The typed columns of `body` for `signature`."""
    return to_arrays(parse_body(body), signature)


def test_row_and_columnar_forms_give_the_same_typed_columns():
    rows = arrays(
        {
            "instances": [
                {"island": "Biscoe", "bill_length_mm": 39.1, "year": 2007},
                {"island": "Dream", "bill_length_mm": 40, "year": 2008},
            ]
        }
    )
    columns = arrays({"inputs": {"island": ["Biscoe", "Dream"], "bill_length_mm": [39.1, 40], "year": [2007, 2008]}})
    for typed in (rows, columns):
        assert typed["island"].tolist() == [b"Biscoe", b"Dream"]
        assert typed["bill_length_mm"].dtype == np.float32
        np.testing.assert_allclose(typed["bill_length_mm"], [39.1, 40.0], rtol=1e-6)
        assert typed["year"].dtype == np.int64 and typed["year"].tolist() == [2007, 2008]


def test_request_shape_and_form_are_recorded():
    row = parse_body({"instances": [{"year": 1}, {"year": 2}, {"year": 3}], "signature_name": "serving_raw"})
    assert (row.rows, row.columnar, row.signature_name) == (3, False, "serving_raw")
    column = parse_body({"inputs": {"year": [1, 2]}})
    assert (column.rows, column.columnar, column.signature_name) == (2, True, None)


def test_null_is_nan_for_numbers_and_empty_for_strings():
    typed = arrays({"instances": [{"island": None, "bill_length_mm": None, "year": 2007}]})
    assert typed["island"].tolist() == [b""]
    assert math.isnan(typed["bill_length_mm"][0])


def test_b64_strings_and_bare_values_for_a_one_input_signature():
    payload = b"\x00\x01serialized"
    encoded = base64.b64encode(payload).decode()
    assert arrays({"instances": ["plain"]}, SERIALIZED)["examples"].tolist() == [b"plain"]
    assert arrays({"inputs": [{"b64": encoded}, "plain"]}, SERIALIZED)["examples"].tolist() == [payload, b"plain"]


@pytest.mark.parametrize(
    "body, message",
    [
        ([1, 2], "the body must be a JSON object with 'instances' or 'inputs', got list"),
        ({}, "the body must have exactly one of 'instances' (row form) or 'inputs' (columnar form)"),
        ({"instances": [], "inputs": {}}, "the body must have exactly one of"),
        ({"instance": [1]}, "unknown key 'instance' in the body"),
        ({"instances": [1], "signature_name": 3}, "'signature_name' must be a string, got 3"),
        ({"instances": []}, "'instances' must be a non-empty list"),
        ({"instances": [{"year": 1}, 2]}, "'instances' mixes objects and bare values"),
        (
            {"instances": [{"year": 1}, {"year": 2, "island": "x"}]},
            "instances[1] has feature 'island' unlike instances[0]",
        ),
        (
            {"instances": [{"year": 1, "island": "x"}, {"year": 2}]},
            "instances[1] lacks feature 'island' unlike instances[0]",
        ),
        (
            {"inputs": {"year": [1, 2], "island": ["x"]}},
            "every list in 'inputs' must have the same length, got lengths [1, 2]",
        ),
        ({"inputs": {"year": []}}, "inputs['year'] must be a non-empty list of values"),
        ({"inputs": 3}, "'inputs' must be a non-empty object"),
    ],
)
def test_malformed_bodies_name_what_is_wrong(body, message):
    with pytest.raises(RequestError) as caught:
        parse_body(body)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "instance, message",
    [
        (
            {"island": "x", "bill_length_mm": 1.0},
            "missing feature 'year'; the signature takes: bill_length_mm, island, year",
        ),
        ({"island": "x", "bill_length_mm": 1.0, "year": 1, "sex": "m"}, "unknown feature 'sex'"),
        (
            {"island": "x", "bill_length_mm": "long", "year": 1},
            "feature 'bill_length_mm': expected a number or null (float32), got 'long'",
        ),
        ({"island": "x", "bill_length_mm": True, "year": 1}, "feature 'bill_length_mm': expected a number or null"),
        (
            {"island": "x", "bill_length_mm": 1.0, "year": 2007.5},
            "feature 'year': expected an integer (int64), got 2007.5",
        ),
        ({"island": "x", "bill_length_mm": 1.0, "year": None}, "feature 'year': expected an integer (int64), got None"),
        (
            {"island": 3, "bill_length_mm": 1.0, "year": 1},
            "feature 'island': expected a string, {\"b64\": ...} or null, got 3",
        ),
        ({"island": {"b64": "%%%"}, "bill_length_mm": 1.0, "year": 1}, "feature 'island': '%%%' is not valid base64"),
    ],
)
def test_values_that_do_not_fit_the_signature_name_the_feature(instance, message):
    with pytest.raises(RequestError) as caught:
        arrays({"instances": [instance]})
    assert message in str(caught.value)


def test_bare_values_need_a_one_input_signature():
    with pytest.raises(RequestError, match="bare values need a signature with one input; this one takes 3"):
        arrays({"instances": [1, 2]})


def test_a_dtype_the_rest_api_cannot_carry_is_refused():
    with pytest.raises(RequestError, match="feature 'flag': the signature takes bool"):
        arrays({"inputs": {"flag": [True]}}, {"flag": tf.TensorSpec([None], tf.bool)})


def test_render_answers_in_the_request_form():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    classes = np.array([b"Adelie", b"Gentoo"], dtype=object)
    assert render({"probabilities": probabilities}, columnar=False) == {"predictions": probabilities.tolist()}
    assert render({"probabilities": probabilities}, columnar=True) == {"outputs": probabilities.tolist()}
    assert render({"probabilities": probabilities, "classes": classes}, columnar=False) == {
        "predictions": [
            {"probabilities": probabilities[0].tolist(), "classes": "Adelie"},
            {"probabilities": probabilities[1].tolist(), "classes": "Gentoo"},
        ]
    }
    assert render({"probabilities": probabilities, "classes": classes}, columnar=True) == {
        "outputs": {"probabilities": probabilities.tolist(), "classes": ["Adelie", "Gentoo"]}
    }


def test_nested_byte_strings_decode_and_bad_utf8_is_replaced():
    nested = np.array([[b"a", b"\xff"]], dtype=object)
    assert render({"classes": nested}, columnar=True) == {"outputs": [["a", "\ufffd"]]}
