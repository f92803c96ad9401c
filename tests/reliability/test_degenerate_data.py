"""Data too thin to train on stops the run at DataGate, before Transform, in one line.

Each case is a real run on a tiny CSV with no [features] lists (as a new user writes one), unless
the case needs a declared feature: exit 2, one `error:` line, no traceback, DataGate FAILED,
nothing downstream run, no unfinished output marked LIVE. A CSV header with repeated names is
caught before ExampleGen (no ML Metadata store is written).
"""

from pathlib import Path

import pytest

from checks import nothing_half_written, one_line_error
from helpers import TABULAR, keel, node_states, write_spec

ROWS = 40


def tiny_spec(tmp_path: Path, header: str, rows: list[str], overrides: dict | None = None) -> Path:
    """A spec over a CSV of `header` and `rows` in tmp_path, training a few steps."""
    data = tmp_path / "data.csv"
    data.write_text("\n".join([header, *rows]) + "\n")
    spec = {
        "pipeline": {"name": "tiny"},
        "data": {"source": str(data), "label": "label"},
        "model": {"module": str(TABULAR), "hparams": {"hidden": [4]}},
        "train": {"steps": 5, "eval_steps": 1, "batch_size": 4, "jit_compile": False},
    }
    return write_spec(tmp_path / "tiny.toml", spec, overrides)


def case_a_split_with_no_rows(tmp_path):
    rows = [f"{i}.5,{'xy'[i % 2]},{'ab'[i % 2]}" for i in range(5)]
    return tiny_spec(tmp_path, "a,b,label", rows, {"data.eval_percent": 1}), [
        "split eval has no rows (the hash split of 5 row(s) sent none to it): add rows, or change data.eval_percent"
    ]


def case_a_single_class_label(tmp_path):
    # Column c never changes: a warning, printed beside the error.
    rows = [f"{i}.5,{'xy'[i % 2]},same,yes" for i in range(ROWS)]
    return tiny_spec(tmp_path, "a,b,c,label", rows), [
        "split train: the label 'label' has a single class ('yes' in all",
        "a classifier needs at least two",
    ]


def case_a_label_with_missing_values(tmp_path):
    rows = [f"{i}.5,{'xy'[i % 2]},{'' if i % 4 == 0 else 'ab'[i % 2]}" for i in range(ROWS)]
    return tiny_spec(tmp_path, "a,b,label", rows), [
        "the label 'label' is missing in",
        "row(s): fill those rows or drop them (a missing label would be a class of its own)",
    ]


def case_a_feature_with_no_values(tmp_path):
    rows = [f"{i}.5,,{'ab'[i % 2]}" for i in range(ROWS)]
    return tiny_spec(tmp_path, "a,d,label", rows, {"features.numeric": ["a", "d"]}), [
        "column 'd' has no values in the",
        "training row(s): fill it, or leave it out of [features]",
    ]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("case_") for c in CASES])
def test_degenerate_data_stops_at_data_gate_in_one_line(tmp_path, case):
    spec, fragments = case(tmp_path)
    workdir = tmp_path / "work"
    result = keel("run", spec, "--workdir", workdir)
    one_line_error(result, "data validation failed, training not started: ", *fragments)
    states = node_states(workdir)
    assert states["DataGate"] == "FAILED"
    assert "Transform" not in states and "Trainer" not in states
    nothing_half_written(workdir)
    if case is case_a_single_class_label:
        assert "warning: column 'c' holds one value ('same') in every training row" in result.stdout


def test_duplicate_column_names_stop_before_example_gen(tmp_path):
    spec = tiny_spec(tmp_path, "a,b,a,label", [f"{i},{i},{i},{'ab'[i % 2]}" for i in range(ROWS)])
    workdir = tmp_path / "work"
    for command in (["validate", spec], ["run", spec, "--workdir", workdir]):
        one_line_error(
            keel(*command), "data.csv has duplicate column names in its header: 'a' is columns 1, 3; rename them"
        )
    assert not (workdir / "metadata.sqlite").exists()
