"""`keel diff`'s pure comparisons: resolved specs field by field, schemas feature by feature."""

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from keel.registry.diff import _better_or_worse, schema_changes, spec_changes

SPEC = {
    "pipeline": {"name": "penguin"},
    "train": {"steps": 200, "seed": 42},
    "model": {"module": "m.py", "hparams": {"hidden": [32], "learning_rate": 0.01}},
}


def schema(text: str) -> schema_pb2.Schema:
    """A TFMD Schema from its text format."""
    return text_format.Parse(text, schema_pb2.Schema())


BASE = schema('feature { name: "island" type: BYTES } feature { name: "bill_length_mm" type: FLOAT }')


def test_identical_specs_have_no_changes():
    assert spec_changes(SPEC, SPEC) == []


def test_changed_fields_are_named_by_their_dotted_path():
    changed = {**SPEC, "train": {"steps": 250, "seed": 42}}
    assert spec_changes(SPEC, changed) == [{"field": "train.steps", "a": 200, "b": 250, "absent": []}]


def test_hparams_compare_as_one_value():
    changed = {**SPEC, "model": {"module": "m.py", "hparams": {"hidden": [8], "learning_rate": 0.01}}}
    assert spec_changes(SPEC, changed) == [
        {
            "field": "model.hparams",
            "a": SPEC["model"]["hparams"],
            "b": {"hidden": [8], "learning_rate": 0.01},
            "absent": [],
        }
    ]


def test_a_field_only_one_side_records_is_marked_absent():
    newer = {**SPEC, "train": {**SPEC["train"], "precision": "auto"}}
    assert spec_changes(SPEC, newer) == [{"field": "train.precision", "a": None, "b": "auto", "absent": ["a"]}]
    assert spec_changes(newer, SPEC)[0]["absent"] == ["b"]


def test_schema_changes_name_added_removed_and_retyped_features():
    other = schema('feature { name: "island" type: INT } feature { name: "sex" type: BYTES }')
    assert schema_changes(BASE, other) == [
        "feature 'sex' added",
        "feature 'bill_length_mm' removed",
        "feature 'island': type BYTES -> INT",
    ]


def test_a_changed_constraint_is_reported_and_a_missing_schema_compares_as_no_change():
    stricter = schema(
        'feature { name: "island" type: BYTES presence { min_fraction: 1.0 } } '
        'feature { name: "bill_length_mm" type: FLOAT }'
    )
    assert schema_changes(BASE, stricter) == ["feature 'island': constraints changed (presence, shape or domain)"]
    assert schema_changes(BASE, BASE) == []
    assert schema_changes(None, BASE) == []


def test_a_metric_change_reads_in_the_metrics_direction():
    assert _better_or_worse("sparse_categorical_accuracy", 0.02) == ", better"
    assert _better_or_worse("root_mean_squared_error", 0.02) == ", worse"
    assert _better_or_worse("mean_absolute_error", -1.5) == ", better"
    assert _better_or_worse("example_count", 3) == "" and _better_or_worse("auc", 0.0) == ""
