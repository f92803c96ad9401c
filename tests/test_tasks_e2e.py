"""Regression and binary classification end to end on real data: train, judge, bless, push.

The regression is the penguins' body mass in grams (the `mass_run` fixture), the binary
classification scikit-learn's breast cancer data judged by AUC.
"""

import glob
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from helpers import REPO, eval_metric, keel, node_states, penguin_mass_data, pushed_versions, write_spec


def eval_records(workdir: Path) -> list[bytes]:
    files = glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def method_names(version: str) -> dict[str, str]:
    saved = saved_model_pb2.SavedModel.FromString((Path(version) / "saved_model.pb").read_bytes())
    return {name: d.method_name for name, d in saved.meta_graphs[0].signature_def.items()}


def test_a_numeric_label_trains_a_regression_that_is_judged_and_pushed(mass_run):
    out = mass_run.run.stdout
    assert "task: regression (inferred: the label 'body_mass_g' is numeric (int)" in out
    assert "judged by root_mean_squared_error (lower is better)" in out
    states = node_states(mass_run.workdir)
    assert states["Trainer"] == states["Evaluator"] == states["Pusher"] == "COMPLETE"
    assert "root_mean_squared_error" in out and "(lower is better)" in out
    assert eval_metric(out, "root_mean_squared_error") < 500  # predicting the mean mass scores about 800 g
    assert mass_run.versions and "blessed: yes" in out


def test_regression_predictions_are_in_the_labels_units(mass_run):
    records = eval_records(mass_run.workdir)
    masses = np.array(
        [
            tf.train.Example.FromString(r).features.feature["body_mass_g"].int64_list.value[0]
            for r in records
            if tf.train.Example.FromString(r).features.feature["body_mass_g"].int64_list.value
        ]
    )
    model = tf.saved_model.load(mass_run.versions[-1])
    predictions = model.signatures["serving_default"](examples=tf.constant(records))["predictions"].numpy()
    assert predictions.shape == (len(records),)
    assert abs(predictions.mean() - masses.mean()) < 300  # grams, not z-scores
    run_record = json.loads(
        next((mass_run.workdir / "pipeline" / "Trainer" / "model_run").glob("*/training.json")).read_text()
    )
    scaling = run_record["features"]["label_scaling"]
    assert run_record["features"]["task"] == "regression" and 3500 < scaling["mean"] < 5000 and scaling["std"] > 300
    regressed = model.signatures["regress"](inputs=tf.constant(records))["outputs"].numpy()
    np.testing.assert_allclose(regressed, predictions, rtol=1e-6)
    assert method_names(mass_run.versions[-1])["regress"] == "tensorflow/serving/regress"
    assert "classify" not in method_names(mass_run.versions[-1])


def test_a_regression_bar_no_model_can_meet_is_not_blessed(tmp_path):
    spec = write_spec(tmp_path / "mass.toml", penguin_mass_data(steps=2, numeric_only=True, threshold=1.0))
    result = keel("run", spec, "--workdir", tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "blessed: no (root_mean_squared_error value" in result.stdout
    assert "upper_bound" in result.stdout
    assert pushed_versions(tmp_path / "work", "penguin_mass") == []


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("breast_cancer")
    spec = write_spec(root / "breast_cancer.toml", REPO / "pipelines" / "breast_cancer.toml", {"train.steps": 150})
    result = keel("run", spec, "--workdir", root / "work")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return root / "work", result


def test_a_binary_label_is_judged_by_auc_on_its_rarer_class(binary_run):
    workdir, result = binary_run
    out = result.stdout
    assert "task: classification (inferred: the label 'diagnosis' is text); judged by auc (higher is better)" in out
    assert "auc scores 'malignant' as the positive class (classes by frequency: benign, malignant)" in out
    assert eval_metric(out, "auc") >= 0.95 and "blessed: yes" in out
    assert set(node_states(workdir).values()) == {"COMPLETE"}


def test_a_classification_model_has_a_classify_signature(binary_run):
    workdir, _ = binary_run
    version = pushed_versions(workdir, "breast_cancer")[-1]
    assert method_names(version)["classify"] == "tensorflow/serving/classify"
    records = eval_records(workdir)[:5]
    model = tf.saved_model.load(version)
    classified = model.signatures["classify"](inputs=tf.constant(records))
    predicted = model.signatures["serving_default"](examples=tf.constant(records))
    assert classified["classes"].numpy().tolist() == [[b"benign", b"malignant"]] * 5
    np.testing.assert_allclose(classified["scores"].numpy(), predicted["probabilities"].numpy(), rtol=1e-6)
