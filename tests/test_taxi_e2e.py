"""The taxi example end to end (slow: 15,002 rows; `make test-slow`)."""


import pytest

from conftest import REPO, keel, node_states


@pytest.mark.slow
def test_taxi_pipeline_beats_the_majority_class(tmp_path):
    spec = tmp_path / "taxi.toml"
    text = (REPO / "pipelines" / "taxi.toml").read_text()
    spec.write_text(text.replace("../models/tabular.py", str(REPO / "models" / "tabular.py")).replace(
        "steps = 1000", "steps = 400"))
    result = keel("run", spec, "--workdir", tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(node_states(tmp_path / "work").values()) == {"COMPLETE"}
    line = next(l for l in result.stdout.splitlines() if l.strip().startswith("eval:"))
    accuracy = float(line.split("sparse_categorical_accuracy")[1].split(",")[0])
    assert accuracy > 0.8  # 78% of trips are not big tippers
    assert "blessed: yes" in result.stdout
