"""Bad rows stop the pipeline at DataGate, before Transform and the Trainer, with the column named.

Each case is a real run on the penguin data with a few cells changed: exit 2, one `error:` line,
no traceback, DataGate FAILED, nothing downstream run, no unfinished output marked LIVE.
"""

import csv
import io

import pytest

from keel.data import datasets

from checks import nothing_half_written, one_line_error
from helpers import keel, node_states, penguin_spec


def penguins_csv(directory, changes: dict[tuple[int, str], str]):
    """The builtin penguins CSV with `changes[(row, column)] = value` applied (row 1 is the first data row)."""
    directory.mkdir(parents=True, exist_ok=True)
    datasets.materialise("penguins", directory)
    rows = list(csv.reader(io.StringIO((directory / "data.csv").read_text())))
    for (row, column), value in changes.items():
        rows[row][rows[0].index(column)] = value
    with (directory / "data.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return directory / "data.csv"


def stopped_at_data_gate(result, workdir, *fragments) -> str:
    error = one_line_error(result, "data validation failed, training not started", *fragments)
    states = node_states(workdir)
    assert states["DataGate"] == "FAILED"
    assert "Transform" not in states and "Trainer" not in states
    assert "DataGate               failed" in result.stdout
    nothing_half_written(workdir)
    return error


def test_text_in_a_numeric_column_stops_before_training(tmp_path):
    """A column of mixed types: numbers and one word, in a column the spec declares numeric."""
    data = penguins_csv(tmp_path / "data", {(7, "body_mass_g"): "heavy"})
    workdir = tmp_path / "work"
    result = keel("run", penguin_spec(tmp_path, source=str(data)), "--workdir", workdir)
    stopped_at_data_gate(
        result,
        workdir,
        "column 'body_mass_g' is declared numeric (features.numeric) but holds text in 1 row(s), e.g. 'heavy'",
    )


@pytest.fixture(scope="module")
def non_finite(tmp_path_factory):
    root = tmp_path_factory.mktemp("non-finite")
    data = penguins_csv(
        root / "data", {(7, "body_mass_g"): "nan", (9, "flipper_length_mm"): "inf", (11, "flipper_length_mm"): "-inf"}
    )
    workdir = root / "work"
    return keel("run", penguin_spec(root, source=str(data)), "--workdir", workdir), workdir


def test_nan_values_stop_before_training(non_finite):
    result, workdir = non_finite
    stopped_at_data_gate(result, workdir, "column 'body_mass_g' holds NaN in 1 row(s): leave a missing value empty")


def test_infinite_values_stop_before_training(non_finite):
    result, workdir = non_finite
    stopped_at_data_gate(result, workdir, "column 'flipper_length_mm' holds infinite values (-inf, inf)")


def test_a_label_class_only_the_eval_split_has_stops_before_training(tmp_path):
    # Twelve rows get a class of their own; hash splitting sends some of them to eval only.
    data = penguins_csv(tmp_path / "data", {(i, "species"): f"Unicorn{i}" for i in range(20, 32)})
    workdir = tmp_path / "work"
    result = keel("run", penguin_spec(tmp_path, source=str(data)), "--workdir", workdir)
    error = stopped_at_data_gate(
        result, workdir, "split eval: the label 'species' has class(es) the train split never shows: 'Unicorn"
    )
    assert "the model cannot predict them" in error


def test_anomalies_against_a_schema_file_stop_the_run_in_plain_words(tmp_path, penguin_runs):
    schema = sorted((penguin_runs.workdir / "pipeline" / "SchemaGen" / "schema").glob("*/schema.pbtxt"))[0]
    data = penguins_csv(tmp_path / "data", {(3, "island"): "Atlantis"})
    spec = penguin_spec(tmp_path, {"data.schema": str(schema)}, source=str(data))
    workdir = tmp_path / "work"
    result = keel("run", spec, "--workdir", workdir)
    stopped_at_data_gate(result, workdir, "column 'island'", "Atlantis")
    assert node_states(workdir)["ExampleValidator"] == "COMPLETE"
