"""`keel export` refusals: one line naming the problem, and no output directory written."""

import glob

import pytest

from checks import one_line_error
from helpers import keel, penguin_spec, pushed_versions


def examples_of(workdir):
    return sorted(glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*")))[-1]


def test_a_model_with_unconvertible_text_ops_is_refused_naming_its_features(penguin_runs, tmp_path):
    out = tmp_path / "lite"
    result = keel(
        "export",
        pushed_versions(penguin_runs.workdir)[0],
        "--examples",
        examples_of(penguin_runs.workdir),
        "--out",
        out,
    )
    one_line_error(result, "text features 'island', 'sex'", "numeric raw features only")
    assert not out.exists(), "a failed export must write nothing"


CASES = {
    "not_a_saved_model": (
        lambda tmp, runs: ["export", tmp, "--examples", examples_of(runs.workdir)],
        "not a SavedModel directory (no saved_model.pb)",
    ),
    "saved_model_without_examples": (
        lambda tmp, runs: ["export", pushed_versions(runs.workdir)[0]],
        "needs --examples",
    ),
    "spec_with_nothing_pushed": (
        lambda tmp, runs: ["export", penguin_spec(tmp), "--workdir", tmp / "work"],
        "no ML Metadata store here",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_refusals_are_one_line(penguin_runs, tmp_path, case):
    args, fragment = CASES[case]
    out = tmp_path / "lite"
    one_line_error(keel(*args(tmp_path, penguin_runs), "--out", out), fragment)
    assert not out.exists()
