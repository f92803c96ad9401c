"""What `keel run --watch` reports between runs: changed files, code diffs, metric deltas, what re-ran."""

import os

from keel.runners import changes
from keel.runners.summary import ComponentResult


def test_a_content_change_is_a_change_and_a_touch_is_not(tmp_path):
    spec, model = tmp_path / "spec.toml", tmp_path / "model.py"
    spec.write_text("a = 1\n")
    model.write_text("x = 1\n")
    before = changes.fingerprints([spec, model, tmp_path / "absent.csv"])
    assert sorted(before) == sorted([str(spec), str(model)])
    os.utime(model, ns=(1, 1))  # touched: a new mtime, the same bytes
    assert changes.changed_files(before, changes.fingerprints([spec, model], before)) == []
    spec.write_text("a = 2\n")
    data = tmp_path / "new.csv"
    data.write_text("c\n1\n")
    model.unlink()
    after = changes.fingerprints([spec, model, data], before)
    assert changes.changed_files(before, after) == [
        (str(model), "removed"),
        (str(data), "added"),
        (str(spec), "modified"),
    ]


def test_an_unchanged_stat_is_not_read_again(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("x\n")
    first = changes.fingerprints([path])
    fake = {str(path): (*first[str(path)][:2], "remembered")}
    assert changes.fingerprints([path], fake)[str(path)][2] == "remembered"


def test_the_code_diff_is_unified_and_cut():
    old = "".join(f"line {i}\n" for i in range(50))
    new = old.replace("line 3\n", "line three\n")
    diff = changes.code_diff(old, new, "model.py")
    assert diff[:2] == ["--- a/model.py", "+++ b/model.py"]
    assert "-line 3" in diff and "+line three" in diff
    many = changes.code_diff(old, new.replace("line", "row"), "model.py", limit=5)
    assert len(many) == 6 and many[-1].startswith("... (") and many[-1].endswith("more diff lines)")


def test_the_metric_against_the_previous_run_and_the_blessed_baseline():
    assert changes.metric_delta("acc", 0.97, None, None) == (
        "acc 0.9700: (the first run of this watch), no blessed baseline to compare with"
    )
    assert changes.metric_delta("acc", 0.97, 0.95, -0.01) == (
        "acc 0.9700: +0.0200 vs the previous run (0.9500), -0.0100 vs the blessed baseline (0.9800)"
    )
    assert changes.metric_delta("acc", None, 0.95, None) is None


def test_what_re_ran():
    components = [
        ComponentResult("CsvExampleGen", "cached", None),
        ComponentResult("Transform", "cached", None),
        ComponentResult("Trainer", "ran", 3.0),
        ComponentResult("Evaluator", "failed", 1.0),
    ]
    assert changes.rerun_line(components) == "ran Trainer; 2 cached; failed Evaluator"
    assert changes.rerun_line(components[:2]) == "ran nothing; 2 cached"
