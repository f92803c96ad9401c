"""The serving codec: TF Serving's REST `instances`/`inputs` bodies to typed arrays, and outputs back."""

import base64
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from keel.serving.codec import (
    MAX_DEPTH,
    RequestError,
    dumps,
    loads,
    nesting_depth,
    parse_body,
    render,
    signature_for,
    to_arrays,
)

SIGNATURE = {
    "island": tf.TensorSpec([None], tf.string),
    "bill_length_mm": tf.TensorSpec([None], tf.float32),
    "year": tf.TensorSpec([None], tf.int64),
}
SERIALIZED = {"examples": tf.TensorSpec([None], tf.string)}
SIGNATURES = {"serving_raw": SIGNATURE, "serving_default": SERIALIZED, "transform_features": SERIALIZED}


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


@pytest.mark.parametrize(
    "body, depth",
    [
        (b"", 0),
        (b"1", 0),
        (b'{"instances": [{"a": [1, [2]]}]}', 5),
        (b'["[[[[", "\\"[[", "\\\\", [["]]]]"]]]', 3),  # brackets in strings, escaped quotes and backslashes
        (b"[" * 100_000, 100_000),
        (b'["unterminated [[[[', 1),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(body, depth):
    assert nesting_depth(body) == depth


def test_a_json_bomb_is_refused_before_parsing_and_real_nesting_is_not():
    with pytest.raises(RequestError, match=f"nests arrays and objects 100000 levels deep; the limit is {MAX_DEPTH}"):
        loads(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(RequestError, match="nests arrays and objects 100001 levels deep"):
        loads(b'{"instances": ' + b'[{"a": ' * 50_000)
    deepest = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert loads(deepest) == json.loads(deepest)
    brackets_in_text = {"instances": ["[" * 10_000]}
    assert loads(json.dumps(brackets_in_text).encode()) == brackets_in_text


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"instances": [1', "the body is not valid JSON: Expecting"),
        (b'{"instances": ["\xff"]}', "the body is not valid JSON: it is not UTF-8 (invalid start byte at byte 16)"),
        (b"[" + b"7" * 5000 + b"]", "an integer has more than 4300 digits"),
    ],
)
def test_bodies_that_are_not_json_name_why(body, message):
    with pytest.raises(RequestError) as caught:
        loads(body)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_lone_b64_object_is_a_bare_value_routed_to_the_one_input_signature():
    payload = b"\n\x0fserialized example"
    encoded = base64.b64encode(payload).decode()
    for body in ({"instances": [{"b64": encoded}, {"b64": encoded}]}, {"inputs": [{"b64": encoded}, {"b64": encoded}]}):
        request = parse_body(body)
        assert request.bare and request.rows == 2
        signature = signature_for(request, SIGNATURES, "serving_raw")
        assert signature == "serving_default"
        assert to_arrays(request, SIGNATURES[signature])["examples"].tolist() == [payload, payload]
    # Named features keep the default; a signature the body names wins; b64 next to other keys is a feature.
    assert signature_for(parse_body({"instances": [{"year": 1}]}), SIGNATURES, "serving_raw") == "serving_raw"
    named = parse_body({"signature_name": "transform_features", "instances": [{"b64": encoded}]})
    assert signature_for(named, SIGNATURES, "serving_raw") == "transform_features"
    assert not parse_body({"instances": [{"b64": encoded, "year": 1}]}).bare
    with pytest.raises(RequestError, match="'instances' mixes objects and bare values"):
        parse_body({"instances": [{"b64": encoded}, {"year": 1}]})


def test_without_serving_default_bare_values_go_to_the_only_one_input_signature():
    only = {"serving_raw": SIGNATURE, "parse": SERIALIZED}
    assert signature_for(parse_body({"instances": ["x"]}), only, "serving_raw") == "parse"
    two = {**only, "other": SERIALIZED}
    assert signature_for(parse_body({"instances": ["x"]}), two, "serving_raw") == "serving_raw"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_refused_naming_the_feature(literal):
    body = f'{{"instances": [{{"island": "x", "bill_length_mm": {literal}, "year": 1}}]}}'.encode()
    with pytest.raises(RequestError) as caught:
        to_arrays(parse_body(loads(body)), SIGNATURE)
    assert str(caught.value).startswith("feature 'bill_length_mm': ")
    assert "is not a finite number; keel's models take finite numbers only (null is a missing value)" in str(
        caught.value
    )


@pytest.mark.parametrize(
    "feature, value, message",
    [
        ("bill_length_mm", 3.5e38, "feature 'bill_length_mm': 3.5e+38 is outside the range of float32"),
        ("bill_length_mm", 10**400, "feature 'bill_length_mm': 1000000000000000000000000000000000000000"),
        ("year", 2**63, "feature 'year': 9223372036854775808 is outside the range of int64"),
        ("year", -(2**63) - 1, "feature 'year': -9223372036854775809 is outside the range of int64"),
        ("island", "\ud800", "feature 'island': '\\ud800' holds a lone surrogate, not UTF-8 text"),
        ("island", {"b64": "é"}, "feature 'island': 'é' is not valid base64"),
    ],
)
def test_numbers_out_of_range_and_text_that_is_not_utf8_are_refused(feature, value, message):
    instance = {"island": "x", "bill_length_mm": 1.0, "year": 1, feature: value}
    with pytest.raises(RequestError) as caught:
        arrays({"instances": [instance]})
    assert message in str(caught.value)


def test_range_edges_are_accepted():
    typed = arrays({"instances": [{"island": "x", "bill_length_mm": 3.4e38, "year": 2**63 - 1}]})
    assert typed["bill_length_mm"][0] == np.float32(3.4e38) and typed["year"][0] == 2**63 - 1
    assert arrays({"instances": [{"island": "x", "bill_length_mm": 1, "year": 2008.0}]})["year"].tolist() == [2008]


def test_errors_quote_at_most_a_short_piece_of_what_was_sent():
    huge = "f" * 100_000
    for body, signature in [
        ({"instances": [{huge: 1}]}, SIGNATURE),
        ({"instances": [{"island": [huge], "bill_length_mm": 1.0, "year": 1}]}, SIGNATURE),
        ({"instances": [{"island": "x", "bill_length_mm": [1.0] * 50_000, "year": 1}]}, SIGNATURE),
    ]:
        with pytest.raises(RequestError) as caught:
            to_arrays(parse_body(body), signature)
        assert len(str(caught.value)) < 300, str(caught.value)[:300]
    with pytest.raises(RequestError) as caught:
        parse_body({huge: 1})
    assert len(str(caught.value)) < 300


def test_non_finite_outputs_are_written_as_tf_serving_writes_them():
    outputs = {"scores": np.array([np.nan, np.inf, -np.inf, 0.5], dtype=np.float32)}
    assert dumps(render(outputs, columnar=True)) == b'{"outputs":[NaN,Infinity,-Infinity,0.5]}'
