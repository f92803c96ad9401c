"""`[train] backend = "jax"`: penguin trained on Keras 3's JAX backend, data-parallel over two host
devices, exported to the same SavedModel (TF2 and TF1 loads), gated LiteRT export, and `keel diff`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_pipeline_e2e import eval_examples

from helpers import eval_metric, keel, penguin_data, pushed_versions, write_spec

# Numeric features only, so the LiteRT export (numeric models) runs on the JAX-trained model too.
NUMERIC_PENGUIN = {"features.categorical": [], "export.lite.variants": ["float32"], "train.steps": 300}


def _training_json(workdir: Path) -> dict:
    runs = sorted(
        (workdir / "pipeline" / "Trainer" / "model_run").glob("*/training.json"), key=lambda p: int(p.parent.name)
    )
    return json.loads(runs[-1].read_text())


class JaxRuns:
    """One workdir: the numeric penguin trained on TensorFlow, then on JAX over two host devices."""

    def __init__(self, root: Path):
        self.workdir = root / "work"
        spec = write_spec(root / "penguin.toml", penguin_data(), NUMERIC_PENGUIN)
        self.tensorflow = keel("run", spec, "--workdir", self.workdir)
        assert self.tensorflow.returncode == 0, self.tensorflow.stdout[-3000:] + self.tensorflow.stderr[-3000:]
        self.tensorflow_training = _training_json(self.workdir)
        write_spec(root / "penguin.toml", penguin_data(), {**NUMERIC_PENGUIN, "train.backend": "jax"})
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        self.jax = subprocess.run(
            [sys.executable, "-m", "keel.cli", "run", str(spec), "--workdir", str(self.workdir)],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
        assert self.jax.returncode == 0, self.jax.stdout[-3000:] + self.jax.stderr[-3000:]
        self.jax_training = _training_json(self.workdir)
        self.versions = pushed_versions(self.workdir)


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory) -> JaxRuns:
    return JaxRuns(tmp_path_factory.mktemp("jax"))


def test_penguin_trains_on_jax_data_parallel_to_the_bar(jax_runs):
    out = jax_runs.jax.stdout
    assert "Trainer: JAX " in out and "on 2 CPU devices, DataParallel" in out, out
    assert "every step compiled by jax.jit" in out
    assert eval_metric(out, "sparse_categorical_accuracy") >= 0.9
    assert "blessed: yes" in out
    record = jax_runs.jax_training
    assert record["backend"] == "jax" and record["distribution"] == "DataParallel"
    assert len(record["devices"]) == 2
    assert record["global_batch_size"] == 64  # 32 per device
    assert record["agreement"]["rows"] > 20
    assert record["agreement"]["max_abs_diff"] <= 1e-4
    assert "backend" not in jax_runs.tensorflow_training  # TensorFlow's record is as before


def test_jax_trained_savedmodel_loads_both_ways_and_agrees(jax_runs):
    export_dir = jax_runs.versions[-1]
    records = eval_examples(jax_runs.workdir)[:16]
    tf2 = tf.saved_model.load(export_dir).signatures["serving_default"](examples=tf.constant(records))
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        tf1 = session.run(signature.outputs["probabilities"].name, {signature.inputs["examples"].name: records})
    np.testing.assert_allclose(tf2["probabilities"].numpy(), tf1, atol=1e-6)
    np.testing.assert_allclose(tf1.sum(axis=1), 1.0, atol=1e-5)


def test_jax_trained_model_passes_the_litert_gate(jax_runs):
    assert "LiteExporter" in jax_runs.jax.stdout
    report = json.loads((Path(jax_runs.versions[-1]) / "lite" / "report.json").read_text())
    assert report["chosen"] == "float32", report


def test_diff_shows_the_backend_change(jax_runs):
    tf_version, jax_version = (Path(v).name for v in jax_runs.versions[-2:])
    result = keel("diff", tf_version, jax_version, "--workdir", jax_runs.workdir)
    assert result.returncode == 0, result.stderr
    assert "train.backend" in result.stdout and "'jax'" in result.stdout.replace('"', "'"), result.stdout


def test_an_unknown_backend_is_refused_by_name(tmp_path):
    spec = write_spec(tmp_path / "penguin.toml", penguin_data(), {"train.backend": "mxnet"})
    result = keel("validate", spec)
    assert result.returncode == 2
    assert "train.backend" in result.stderr and "'jax'" in result.stderr, result.stderr
