"""TF Serving's REST classify/regress bodies to serialized tf.Examples, and their results back to JSON."""

import base64

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.serving.codec import (
    RequestError,
    example_from_json,
    example_kinds,
    parse_examples_body,
    render_classify,
    render_regress,
    to_examples,
)

# keel's serving_raw dtypes: float32 for float columns, float64 for integer columns, string for text.
RAW = {
    "bill_length_mm": tf.TensorSpec([None], tf.float32),
    "body_mass_g": tf.TensorSpec([None], tf.float64),
    "island": tf.TensorSpec([None], tf.string),
}
KINDS = example_kinds(RAW)


def features(example: tf.train.Example) -> dict:
    """feature -> (list kind, values) of a tf.Example."""
    found = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        found[name] = (kind, list(getattr(feature, kind).value))
    return found


def test_kinds_come_from_the_serving_raw_dtypes():
    assert KINDS == {"bill_length_mm": "float_list", "body_mass_g": "int64_list", "island": "bytes_list"}
    assert example_kinds(None) is None


def test_scalars_lists_b64_and_null_become_the_model_s_feature_kinds():
    example = example_from_json(
        {"bill_length_mm": 39, "body_mass_g": [3750.0, 3800], "island": {"b64": base64.b64encode(b"Dream").decode()}},
        KINDS,
    )
    found = features(example)
    assert found["bill_length_mm"] == ("float_list", [39.0])  # an integral JSON number for a float column
    assert found["body_mass_g"] == ("int64_list", [3750, 3800])
    assert found["island"] == ("bytes_list", [b"Dream"])
    assert features(example_from_json({"island": "Biscoe", "body_mass_g": None}, KINDS)) == {
        "island": ("bytes_list", [b"Biscoe"])
    }  # null: the feature is missing


def test_without_serving_raw_the_kinds_follow_the_values_as_in_tf_serving():
    found = features(example_from_json({"a": 3, "b": [1.5, 2], "c": "x"}, None))
    assert found == {"a": ("int64_list", [3]), "b": ("float_list", [1.5, 2.0]), "c": ("bytes_list", [b"x"])}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"body_mass_g": 3750.5}, "examples[2]: feature 'body_mass_g': expected an integer (int64), got 3750.5"),
        ({"bill_length_mm": "long"}, "examples[2]: feature 'bill_length_mm': expected a number or null"),
        ({"bill_length_mm": True}, "examples[2]: feature 'bill_length_mm': expected a number or null"),
        ({"bill_length_mm": float("inf")}, "examples[2]: feature 'bill_length_mm': Infinity is not a finite number"),
        ({"island": 3}, "examples[2]: feature 'island': expected a string"),
        ({"island": {"b64": "%%"}}, "examples[2]: feature 'island': '%%' is not valid base64"),
        ({"island": ["a", None]}, "examples[2]: feature 'island': a list may not hold null"),
        (
            {"species": "Adelie"},
            "examples[2]: unknown feature 'species'; the model takes: bill_length_mm, body_mass_g, island",
        ),
    ],
)
def test_a_value_that_does_not_fit_names_the_example_and_the_feature(values, message):
    with pytest.raises(RequestError) as raised:
        example_from_json(values, KINDS, "examples[2]")
    assert str(raised.value).startswith(message), str(raised.value)


def test_context_is_merged_into_each_example_and_the_example_wins():
    request = parse_examples_body(
        {
            "context": {"island": "Dream", "body_mass_g": 4000},
            "examples": [{"bill_length_mm": 40}, {"island": "Biscoe"}],
        }
    )
    first, second = (features(tf.train.Example.FromString(s)) for s in to_examples(request, KINDS))
    assert first == {
        "island": ("bytes_list", [b"Dream"]),
        "body_mass_g": ("int64_list", [4000]),
        "bill_length_mm": ("float_list", [40.0]),
    }
    assert second == {"island": ("bytes_list", [b"Biscoe"]), "body_mass_g": ("int64_list", [4000])}
    with pytest.raises(RequestError, match="^context: feature 'body_mass_g'"):
        to_examples(parse_examples_body({"context": {"body_mass_g": "x"}, "examples": [{}]}), KINDS)


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "the body must be a JSON object with 'examples'"),
        ({"instances": []}, "unknown key 'instances' in the body"),
        ({"examples": []}, "'examples' must be a non-empty list"),
        ({"examples": [1]}, "examples[0] must be an object"),
        ({"examples": [{}], "context": [1]}, "'context' must be an object"),
        ({"examples": [{}], "signature_name": 3}, "'signature_name' must be a string"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body, message):
    with pytest.raises(RequestError) as raised:
        parse_examples_body(body)
    assert str(raised.value).startswith(message), str(raised.value)


def test_results_are_tf_serving_s_json():
    classes = np.array([[b"Adelie", b"Gentoo"], [b"Adelie", b"Gentoo"]], dtype=object)
    scores = np.array([[0.75, 0.25], [0.5, 0.5]], dtype=np.float32)
    assert render_classify({"classes": classes, "scores": scores}, 2) == {
        "results": [[["Adelie", 0.75], ["Gentoo", 0.25]], [["Adelie", 0.5], ["Gentoo", 0.5]]]
    }
    assert render_regress({"outputs": np.array([1.5, 2.0], dtype=np.float32)}, 2) == {"results": [1.5, 2.0]}
    with pytest.raises(ValueError, match="no 'outputs' output; it has: predictions"):
        render_regress({"predictions": np.array([1.0])}, 1)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["\ud800", {"b64": "%%"}, {"b64": "QQ=="}, {"b64": 3}]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=2)),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*RAW, "other", ""]), VALUES, max_size=4), st.booleans())
def test_any_json_gives_an_example_or_a_request_error(values, typed):
    try:
        example = example_from_json(values, KINDS if typed else None)
    except RequestError as e:
        assert "\n" not in str(e)
    else:
        tf.train.Example.FromString(example.SerializeToString())
