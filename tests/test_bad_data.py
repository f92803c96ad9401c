"""Bad data stops the pipeline before Transform and the Trainer, with the column named."""

import csv
import io

from conftest import keel, node_states, penguin_spec
from keel import datasets


def penguins_csv(tmp_path, change_row: int, column: str, value: str):
    directory = tmp_path / "data"
    datasets.materialise("penguins", directory)
    rows = list(csv.reader(io.StringIO((directory / "data.csv").read_text())))
    rows[change_row][rows[0].index(column)] = value
    with (directory / "data.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return directory / "data.csv"


def test_text_in_a_numeric_column_stops_before_training(tmp_path):
    data = penguins_csv(tmp_path, change_row=7, column="body_mass_g", value="heavy")
    workdir = tmp_path / "work"
    result = keel("run", penguin_spec(tmp_path, source=str(data)), "--workdir", workdir)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1
    assert ("column 'body_mass_g' is declared numeric (features.numeric) but holds text in 1 row(s), e.g. 'heavy'"
            in errors[0])
    assert "Traceback" not in result.stdout + result.stderr
    states = node_states(workdir)
    assert states["DataGate"] == "FAILED"
    assert "Transform" not in states and "Trainer" not in states
    assert "DataGate               failed" in result.stdout


def test_anomalies_against_a_schema_file_stop_the_run_in_plain_words(tmp_path, penguin_runs):
    schema = sorted((penguin_runs.workdir / "pipeline" / "SchemaGen" / "schema").glob("*/schema.pbtxt"))[0]
    data = penguins_csv(tmp_path, change_row=3, column="island", value="Atlantis")
    spec = penguin_spec(tmp_path, source=str(data))
    spec.write_text(spec.read_text().replace('label = "species"', f'label = "species"\nschema = "{schema}"'))
    workdir = tmp_path / "work"
    result = keel("run", spec, "--workdir", workdir)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stdout + result.stderr
    assert "column 'island'" in errors[0] and "Atlantis" in errors[0]
    states = node_states(workdir)
    assert states["ExampleValidator"] == "COMPLETE" and states["DataGate"] == "FAILED"
    assert "Transform" not in states
