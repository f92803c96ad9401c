"""The task a spec trains for and the metrics that fit it: inference from the label, one-line errors."""

import pytest

from keel.core.errors import SpecError
from keel.core.spec import load_spec
from keel.core.tasks import METRICS, metric_problem, threshold_problem
from keel.data.sources import resolve_source
from keel.data.task import resolve_task

from helpers import penguin_data, penguin_mass_data, write_spec


def load(tmp_path, data: dict, overrides: dict | None = None):
    return load_spec(write_spec(tmp_path / "s.toml", data, overrides))


def error_of(tmp_path, data: dict, overrides: dict | None = None) -> str:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, data, overrides)
    return str(caught.value)


def csv_spec(tmp_path, label_values: list[str], overrides: dict | None = None):
    rows = "\n".join(f"{i},{v}" for i, v in enumerate(label_values))
    (tmp_path / "data.csv").write_text(f"x,y\n{rows}\n")
    data = penguin_data(source=str(tmp_path / "data.csv"))
    data["data"]["label"] = "y"
    data["features"] = {"numeric": ["x"], "categorical": []}
    data["eval"] = {}
    return load(tmp_path, data, overrides)


def test_a_text_label_is_classification_a_numeric_one_regression(tmp_path):
    penguin = load(tmp_path, penguin_data())
    assert penguin.task.task == "classification" and penguin.task.reason == "inferred: the label 'species' is text"
    assert penguin.metric.name == "sparse_categorical_accuracy" and penguin.metric.higher_is_better
    mass = load(tmp_path, penguin_mass_data())
    assert mass.task.task == "regression" and mass.task.label_kind == "int"
    assert 'set [data] task = "classification"' in mass.task.reason
    assert not mass.metric.higher_is_better


def test_numbers_with_a_fraction_are_floats_and_text_wins(tmp_path):
    assert csv_spec(tmp_path, ["1", "2.5", ""]).task.label_kind == "float"
    assert csv_spec(tmp_path, ["1", "two"]).task.task == "classification"


def test_a_declared_task_overrides_the_inference(tmp_path):
    spec = csv_spec(tmp_path, ["0", "1", "1"], {"data.task": "classification"})
    assert spec.task.task == "classification" and spec.task.reason == "declared in [data] task"
    assert spec.task.distinct == 2


def test_the_default_metric_follows_the_task():
    assert METRICS["root_mean_squared_error"].task == "regression"
    assert metric_problem(None, "regression") is None
    assert metric_problem(None, "classification") is None


def test_a_metric_of_the_other_task_is_one_line(tmp_path):
    assert error_of(tmp_path, penguin_data(), {"eval.metric": "mean_absolute_error"}) == (
        "s.toml: eval.metric: 'mean_absolute_error' is a regression metric but the task is classification; "
        "expected one of: sparse_categorical_accuracy, auc, precision, recall, binary_accuracy"
    )


def test_a_declared_task_is_checked_before_any_file_is_read(tmp_path):
    data = penguin_data(source=str(tmp_path / "absent.csv"))
    data["data"]["task"] = "regression"
    path = write_spec(tmp_path / "s.toml", data, {"eval.metric": "auc", "eval.threshold": None})
    with pytest.raises(SpecError) as caught:
        load_spec(path, check_files=False)
    assert str(caught.value) == (
        "s.toml: eval.metric: 'auc' is a classification metric but the task is regression; "
        "expected one of: mean_squared_error, mean_absolute_error, root_mean_squared_error"
    )


def test_a_binary_metric_on_three_classes_is_one_line(tmp_path):
    assert error_of(tmp_path, penguin_data(), {"eval.metric": "auc"}) == (
        "s.toml: eval.metric: 'auc' judges a binary label but the label has 3 classes; use sparse_categorical_accuracy"
    )


def test_a_binary_metric_fits_two_classes(tmp_path):
    spec = csv_spec(tmp_path, ["a", "b", "a"], {"eval.metric": "recall"})
    assert spec.metric.labels == "binary"


def test_thresholds_follow_the_metric():
    assert threshold_problem("auc", "classification", 1.5, 0.01) == "eval.threshold: got 1.5; auc lies in [0, 1]"
    assert threshold_problem("mean_squared_error", "regression", 250.0, 40.0) is None
    assert threshold_problem("mean_squared_error", "regression", -1.0, 0.0) == (
        "eval.threshold: got -1.0; mean_squared_error is never negative"
    )
    assert threshold_problem(None, "classification", None, 2.0) == (
        "eval.max_regression: got 2.0; sparse_categorical_accuracy lies in [0, 1], so at most 1"
    )


def test_an_error_bar_above_one_is_fine_for_regression(tmp_path):
    assert load(tmp_path, penguin_mass_data(threshold=500.0)).eval.threshold == 500.0


def test_a_label_with_no_values_is_one_line(tmp_path):
    (tmp_path / "data.csv").write_text("x,y\n1,\n2,\n")
    data = penguin_data(source=str(tmp_path / "data.csv"))
    data["data"]["label"] = "y"
    data["features"] = {"numeric": ["x"], "categorical": []}
    assert error_of(tmp_path, data) == f"s.toml: data.label: 'y' has no values in {tmp_path / 'data.csv'}"


def test_resolve_task_reads_a_builtin_without_materialising_it(tmp_path):
    overrides = {"data.source": "builtin:breast_cancer", "data.label": "diagnosis", "features": None}
    spec = load(tmp_path, penguin_data(), overrides)
    resolved = resolve_task("auto", resolve_source(spec), "diagnosis")
    assert (resolved.task, resolved.label_kind, resolved.distinct) == ("classification", "string", 2)
