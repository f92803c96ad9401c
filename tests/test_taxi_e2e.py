"""The taxi examples end to end (slow: 15,002 rows; `make test-slow`): big tippers, and the fare."""

import pytest

from helpers import REPO, eval_metric, keel, node_states, write_spec


@pytest.mark.slow
def test_taxi_pipeline_beats_the_majority_class(tmp_path):
    spec = write_spec(tmp_path / "taxi.toml", REPO / "pipelines" / "taxi.toml", {"train.steps": 400})
    result = keel("run", spec, "--workdir", tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(node_states(tmp_path / "work").values()) == {"COMPLETE"}
    accuracy = eval_metric(result.stdout, "sparse_categorical_accuracy")
    assert accuracy > 0.8  # 78% of trips are not big tippers
    assert "blessed: yes" in result.stdout


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
