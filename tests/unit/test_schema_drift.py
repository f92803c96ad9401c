"""Schema drift between the span the blessed model was trained on and this one: what stops, what warns."""

from tensorflow_metadata.proto.v0 import schema_pb2

from keel.pipeline.components.schema_drift import drift
from keel.pipeline.config import GateConfig

CONFIG = GateConfig(
    label="species",
    numeric=("bill_length_mm", "body_mass_g"),
    categorical=("island",),
    task="classification",
    new_columns="warn",
)


def schema(**types: int) -> schema_pb2.Schema:
    found = schema_pb2.Schema()
    for name, kind in types.items():
        found.feature.add(name=name, type=kind)
    return found


BASELINE = schema(
    species=schema_pb2.BYTES, bill_length_mm=schema_pb2.FLOAT, body_mass_g=schema_pb2.INT, island=schema_pb2.BYTES
)


def test_the_same_columns_are_no_drift():
    assert drift(BASELINE, BASELINE, CONFIG, "17") == ([], [])


def test_a_retyped_column_the_model_reads_stops_the_run_and_says_how_to_fix_it():
    now = schema(
        species=schema_pb2.BYTES, bill_length_mm=schema_pb2.INT, body_mass_g=schema_pb2.FLOAT, island=schema_pb2.BYTES
    )
    problems, warnings = drift(now, BASELINE, CONFIG, "17")
    assert problems == [
        "column 'bill_length_mm' holds integers here but floats in the data the blessed model (version 17) was "
        "trained on, which parses it as floats when evaluated and served: write the column with a decimal point "
        "(3.0, not 3), as the earlier spans were",
        "column 'body_mass_g' holds floats here but integers in the data the blessed model (version 17) was "
        "trained on, which parses it as integers when evaluated and served: write it as whole numbers, as the "
        "earlier spans were",
    ]
    assert warnings == []


def test_a_dropped_column_stops_and_an_added_one_warns():
    now = schema(
        species=schema_pb2.BYTES, bill_length_mm=schema_pb2.FLOAT, island=schema_pb2.BYTES, colour=schema_pb2.BYTES
    )
    problems, warnings = drift(now, BASELINE, CONFIG, "17")
    assert problems == [
        "column 'body_mass_g' is not in this data, but the blessed model (version 17) was trained on it: add it "
        "back, or drop it from the spec's features"
    ]
    assert warnings == [
        "column(s) 'colour' are new since the blessed model (version 17); the model does not read them (the "
        "spec's features name its inputs)"
    ]


def test_columns_the_model_does_not_read_may_change():
    now = schema(**{f.name: f.type for f in BASELINE.feature}, year=schema_pb2.FLOAT)
    before = schema(**{f.name: f.type for f in BASELINE.feature}, year=schema_pb2.INT)
    assert drift(now, before, CONFIG, "17") == ([], [])
