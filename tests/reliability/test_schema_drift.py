"""A second span whose columns drifted from the first's: the run stops at DataGate in one line naming the
column and the blessed version, instead of failing inside the Evaluator; a new column is a warning."""

import csv
import io

from keel.data import datasets

from checks import nothing_half_written, one_line_error
from helpers import keel, node_states, penguin_spec


def write_span(root, span: int, rewrite=None):
    """The builtin penguins CSV as spans/span-SPAN/penguins.csv, each row passed through `rewrite(header, row)`."""
    directory = root / "spans" / f"span-{span}"
    directory.mkdir(parents=True)
    datasets.materialise("penguins", directory)
    rows = list(csv.reader(io.StringIO((directory / "data.csv").read_text())))
    (directory / "data.csv").unlink()
    header, body = rows[0], rows[1:]
    if rewrite:
        header, body = rewrite(header, body)
    with (directory / "penguins.csv").open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *body])


def integers_and_a_new_column(header, body):
    """bill_length_mm written without decimals (as pandas writes a float column with no gaps), and a new column."""
    column = header.index("bill_length_mm")
    for row in body:
        row[column] = str(round(float(row[column]))) if row[column] else ""
    return [*header, "colour"], [[*row, "brown"] for row in body]


def test_a_retyped_column_in_the_next_span_stops_at_the_data_gate_naming_it(tmp_path):
    write_span(tmp_path, 1)
    write_span(tmp_path, 2, integers_and_a_new_column)
    spec = penguin_spec(tmp_path, source="spans/span-{SPAN}/penguins.csv", steps=60)
    workdir = tmp_path / "work"
    first = keel("run", spec, "--span", "1", "--workdir", workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    version = next((workdir / "serving" / "penguin").iterdir()).name

    second = keel("run", spec, "--workdir", workdir)  # the latest span: 2
    one_line_error(
        second,
        "data validation failed, training not started",
        f"column 'bill_length_mm' holds integers here but floats in the data the blessed model (version {version}) "
        "was trained on, which parses it as floats when evaluated and served: write the column with a decimal point",
    )
    assert (
        f"warning: column(s) 'colour' are new since the blessed model (version {version}); the model does not read them"
    ) in second.stdout
    states = node_states(workdir)
    assert states["DataGate"] == "FAILED" and "Transform" not in states and "Evaluator" not in states
    nothing_half_written(workdir)
