"""The taxi example end to end (slow: 15,002 rows; `make test-slow`)."""

import pytest

from helpers import REPO, keel, node_states, write_spec


@pytest.mark.slow
def test_taxi_pipeline_beats_the_majority_class(tmp_path):
    spec = write_spec(tmp_path / "taxi.toml", REPO / "pipelines" / "taxi.toml", {"train.steps": 400})
    result = keel("run", spec, "--workdir", tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(node_states(tmp_path / "work").values()) == {"COMPLETE"}
    line = next(l for l in result.stdout.splitlines() if l.strip().startswith("eval:"))
    accuracy = float(line.split("sparse_categorical_accuracy")[1].split(",")[0])
    assert accuracy > 0.8  # 78% of trips are not big tippers
    assert "blessed: yes" in result.stdout
