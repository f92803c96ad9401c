"""Feature inference: which columns the model gets and of which kind, from the spec or the schema's dtypes."""

import tensorflow as tf

from keel.data.features import FeatureSet, dtype_kind, split_features

KINDS = {"species": "string", "island": "string", "sex": "string", "bill_length_mm": "float", "year": "int"}


def test_listed_features_are_used_as_given():
    assert split_features(KINDS, "species", ["year"], ["island"]) == (["year"], ["island"])
    assert split_features(KINDS, "species", [], ["sex"]) == ([], ["sex"])


def test_without_a_list_every_column_but_the_label_is_used_by_kind_in_name_order():
    numeric, categorical = split_features(KINDS, "species", [], [])
    assert numeric == ["bill_length_mm", "year"]
    assert categorical == ["island", "sex"]


def test_a_numeric_label_is_left_out_too():
    assert split_features({"x": "float", "y": "float"}, "y", [], []) == (["x"], [])


def test_dtype_kinds():
    assert [dtype_kind(d) for d in (tf.float32, tf.float64, tf.int64, tf.int32, tf.string)] == [
        "float",
        "float",
        "int",
        "int",
        "string",
    ]


def test_feature_set_names_and_classes():
    features = FeatureSet(
        numeric=["bill_length_mm"],
        categorical={"island": 4},
        label="species",
        label_vocabulary=["Adelie", "Chinstrap", "Gentoo"],
        raw_inputs=["bill_length_mm", "island"],
    )
    assert features.names == ["bill_length_mm", "island"]
    assert features.num_classes == 3
