"""The taxi examples end to end (slow: 15,002 rows; `make test-slow`): big tippers, and the fare."""

import json

import pytest

from helpers import REPO, eval_metric, keel, node_states, write_spec


@pytest.mark.slow
def test_taxi_pipeline_beats_the_majority_class_and_exports_to_litert(tmp_path):
    spec = write_spec(tmp_path / "taxi.toml", REPO / "pipelines" / "taxi.toml", {"train.steps": 400})
    result = keel("run", spec, "--workdir", tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(node_states(tmp_path / "work").values()) == {"COMPLETE"}
    accuracy = eval_metric(result.stdout, "sparse_categorical_accuracy")
    assert accuracy > 0.8  # 78% of trips are not big tippers
    assert "blessed: yes" in result.stdout

    # Integer categories (trip_start_hour, ...) in the float32 input, company and payment_type as strings.
    out = tmp_path / "lite"
    export = keel("export", spec, "--workdir", tmp_path / "work", "--variants", "float32", "--out", out)
    assert export.returncode == 0, export.stderr[-3000:]
    inputs = {i["name"]: i for i in json.loads((out / "signature.json").read_text())["inputs"]}
    assert sorted(inputs) == ["company", "features", "payment_type"]
    assert {"trip_start_hour", "pickup_community_area", "fare"} <= set(inputs["features"]["columns"])
    (float32,) = json.loads((out / "report.json").read_text())["variants"]
    assert float32["passed"] and float32["agreement"] == 1.0, float32


@pytest.mark.slow
def test_taxi_fare_regression_beats_predicting_the_mean(tmp_path):
    spec = write_spec(tmp_path / "taxi_fare.toml", REPO / "pipelines" / "taxi_fare.toml", {"train.steps": 400})
    result = keel("run", spec, "--workdir", tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(node_states(tmp_path / "work").values()) == {"COMPLETE"}
    assert "task: regression (inferred: the label 'fare' is numeric (float)" in result.stdout
    # Predicting the mean fare scores an RMSE of about 11.5 dollars (the fares' standard deviation).
    assert eval_metric(result.stdout, "root_mean_squared_error") < 8.0
    assert "blessed: yes" in result.stdout
