"""Later spans whose columns drifted from the first's. Integers where the blessed model had floats are written
as floats and the run goes on, saying so; a new column is a warning, or an error with data.new_columns =
"error"; a retype that cannot be converted stops the run at DataGate in one line naming the column and the
blessed version, instead of failing inside the Evaluator. `keel diff` shows what changed."""

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


def decimals_in_body_mass(header, body):
    """body_mass_g, integers in every earlier span, written with decimals."""
    column = header.index("body_mass_g")
    for row in body:
        row[column] = f"{float(row[column]) + 0.5}" if row[column] else ""
    return header, body


def test_columns_that_drift_between_spans(tmp_path):
    write_span(tmp_path, 1)
    write_span(tmp_path, 2, integers_and_a_new_column)
    write_span(tmp_path, 3, decimals_in_body_mass)
    spec = penguin_spec(tmp_path, source="spans/span-{SPAN}/penguins.csv", steps=60)
    workdir = tmp_path / "work"
    first = keel("run", spec, "--span", "1", "--workdir", workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    version = next((workdir / "serving" / "penguin").iterdir()).name

    # The spec can make a new column an error.
    strict = keel("run", spec, "--span", "2", "--set", 'data.new_columns="error"', "--workdir", workdir)
    one_line_error(strict, f"column(s) 'colour' are new since the blessed model (version {version})")
    assert node_states(workdir)["DataGate"] == "FAILED"

    # By default it is a warning, and bill_length_mm's integers are written as floats: the run goes on,
    # and the Evaluator compares with the blessed model, which parses the column as floats.
    second = keel("run", spec, "--span", "2", "--workdir", workdir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (
        f"warning: column 'bill_length_mm' holds integers in this span: written as floats, the type in the data "
        f"the blessed model (version {version}) was trained on"
    ) in second.stdout
    assert f"warning: column(s) 'colour' are new since the blessed model (version {version})" in second.stdout
    assert "Traceback" not in second.stdout + second.stderr
    assert "blessed: yes" in second.stdout
    versions = sorted(p.name for p in (workdir / "serving" / "penguin").iterdir())
    assert len(versions) == 2

    diff = keel("diff", versions[0], versions[1], "--workdir", workdir)
    assert diff.returncode == 0, diff.stderr[-3000:]
    assert "schema: feature 'colour' added" in diff.stdout
    assert "bill_length_mm': type" not in diff.stdout, "converted: the same type as before"

    # Decimals where the blessed model had integers cannot be converted without changing the values.
    third = keel("run", spec, "--span", "3", "--workdir", workdir)
    one_line_error(
        third,
        "data validation failed, training not started",
        f"column 'body_mass_g' holds floats here but integers in the data the blessed model (version {versions[1]}) "
        "was trained on, which parses it as integers when evaluated and served: write it as whole numbers",
    )
    states = node_states(workdir)
    assert states["DataGate"] == "FAILED" and "Transform" not in states and "Evaluator" not in states
    nothing_half_written(workdir)
