"""Where `keel logs export` writes a span and its lineage, and how logged rows become CSV fields."""

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from keel.core.errors import SpecError
from keel.data.sources import DataSource, span_file, span_files, span_lineage_file
from keel.monitoring.export_span import csv_rows
from keel.monitoring.logs import LogError, LoggedRow


def source(base, pattern: str) -> DataSource:
    return DataSource("csv", base, pattern, ["species", "island", "mass"])


def test_a_span_directory_gets_one_file_and_its_lineage_beside_it(tmp_path):
    (tmp_path / "span-02").mkdir()
    (tmp_path / "span-02" / "a.csv").write_text("x\n1\n")
    (tmp_path / "span-12").mkdir()
    (tmp_path / "span-12" / "a.csv").write_text("x\n1\n")
    spans = source(tmp_path, "span-{SPAN}/*.csv")
    assert span_files(spans, 2) == [tmp_path / "span-02" / "a.csv"]  # span-02 is span 2
    assert span_files(spans, 1) == [] and span_files(spans, 12) == [tmp_path / "span-12" / "a.csv"]
    assert span_file(spans, 3) == tmp_path / "span-3" / "logged.csv"
    assert span_lineage_file(spans, 3) == tmp_path / "span-3.lineage.json"
    files = source(tmp_path, "penguins-{SPAN}.csv")
    assert span_file(files, 3) == tmp_path / "penguins-3.csv"
    assert span_lineage_file(files, 3) == tmp_path / "penguins-3.csv.lineage.json"
    with pytest.raises(SpecError, match=r"data.source: 'span-\{SPAN\}/\?.csv': a new span is written only"):
        span_file(source(tmp_path, "span-{SPAN}/?.csv"), 3)


def row(request_id: str, **values) -> LoggedRow:
    example = tf.train.Example()
    for name, value in values.items():
        feature = example.features.feature[name]
        if isinstance(value, str):
            feature.bytes_list.value.append(value.encode())
        elif isinstance(value, float):
            feature.float_list.value.append(value)
        elif value is not None:
            feature.int64_list.value.append(value)
    return LoggedRow(request_id, 0.0, "1", example.SerializeToString(), None)


def test_logged_rows_become_fields_typed_by_the_schema_and_unlabelled_ones_are_dropped():
    schema = schema_pb2.Schema()
    schema.feature.add(name="mass", type=schema_pb2.INT)
    schema.feature.add(name="island", type=schema_pb2.BYTES)
    rows = [row("a", island="Dream", mass=3750.0), row("b", island=None, mass=4000), row("c", island="Biscoe")]
    written, unlabelled = csv_rows(
        rows, ["species", "island", "mass"], "species", {"a": "Adelie", "b": "Gentoo"}, schema
    )
    assert written == [["Adelie", "Dream", "3750"], ["Gentoo", "", "4000"]] and unlabelled == 1
    bill = schema_pb2.Schema()
    (lengths,) = csv_rows([row("d", island=39.1)], ["species", "island"], "species", {"d": "Adelie"}, bill)[0]
    assert lengths == ["Adelie", "39.1"]  # float32's shortest form, not 39.099998474121094
    floats = schema_pb2.Schema()
    floats.feature.add(name="mass", type=schema_pb2.FLOAT)
    (mass,) = csv_rows([row("e", mass=3750)], ["species", "mass"], "species", {"e": "Adelie"}, floats)[0]
    assert mass == ["Adelie", "3750.0"]  # an integer sent for a FLOAT column keeps the column FLOAT in the span
    with pytest.raises(LogError, match=r"request a: feature 'mass' is 3750.5; the schema types it INT"):
        csv_rows([row("a", mass=3750.5)], ["species", "mass"], "species", {"a": "Adelie"}, schema)
    with pytest.raises(LogError, match=r"request a: feature 'beak' is not a column of data.source"):
        csv_rows([row("a", beak=1)], ["species", "mass"], "species", {"a": "Adelie"}, schema)
