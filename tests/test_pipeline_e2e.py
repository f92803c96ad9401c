"""End to end: the penguin spec through a real TFX pipeline, ML Metadata, caching and the pushed model."""

import glob
import json
import math

import numpy as np
import tensorflow as tf

from keel.mlmd import store as metadata

from helpers import eval_metric, pushed_versions

NODES = [
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
    "Trainer",
    "baseline",
    "Evaluator",
    "Pusher",
]
UPSTREAM = ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate", "Transform"]


def test_cold_run_completes_every_component(penguin_runs):
    assert penguin_runs.cold.returncode == 0, penguin_runs.cold.stderr[-3000:]
    assert penguin_runs.cold_states == {n: "COMPLETE" for n in NODES}
    out = penguin_runs.cold.stdout
    assert "blessed: yes" in out
    assert "pushed: " in out
    for node in NODES:
        assert f"] {node}" in out, f"no progress line for {node}"


def test_identical_second_run_is_fully_cached(penguin_runs):
    assert penguin_runs.again.returncode == 0, penguin_runs.again.stderr[-3000:]
    expected = {n: "CACHED" for n in NODES}
    expected["baseline"] = "COMPLETE"  # a resolver is not an execution that can be cached
    assert penguin_runs.again_states == expected
    assert len(penguin_runs.versions_after_again) == 1, "a cached run must not push a duplicate version"


def test_changing_only_steps_reruns_trainer_evaluator_pusher(penguin_runs):
    assert penguin_runs.steps_changed.returncode == 0, penguin_runs.steps_changed.stderr[-3000:]
    states = penguin_runs.steps_changed_states
    assert {n: states[n] for n in UPSTREAM} == {n: "CACHED" for n in UPSTREAM}
    assert {n: states[n] for n in ["Trainer", "Evaluator", "Pusher"]} == dict.fromkeys(
        ["Trainer", "Evaluator", "Pusher"], "COMPLETE"
    )
    assert len(penguin_runs.versions_after_steps_changed) == 2


def test_resolved_spec_is_recorded_in_ml_metadata(penguin_runs):
    store = metadata.open_store(penguin_runs.workdir)
    run = metadata.latest_run_context(store)
    recorded = json.loads(metadata.custom(run, "keel_spec"))
    assert recorded["train"]["steps"] == 2 and recorded["eval"]["threshold"] == 1.0
    assert recorded["data"]["eval_percent"] == 20  # a default, filled in
    data = json.loads(metadata.custom(run, "keel_data"))
    assert data["origin"]["builtin"] == "penguins" and len(data["files"][0]["sha256"]) == 64


def test_accuracy_is_above_the_spec_threshold(penguin_runs):
    accuracy = eval_metric(penguin_runs.cold.stdout, "sparse_categorical_accuracy")
    assert accuracy >= 0.9


def eval_examples(workdir) -> list[bytes]:
    files = glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def dense_inputs(records: list[bytes], signature) -> dict:
    """Raw feature columns for serving_raw, from tf.Example protos (missing -> NaN or "")."""
    columns = {}
    for name, spec in signature.structured_input_signature[1].items():
        values = []
        for record in records:
            feature = tf.train.Example.FromString(record).features.feature.get(name)
            kind = feature.WhichOneof("kind") if feature is not None else None
            value = getattr(feature, kind).value if kind else []
            if spec.dtype == tf.string:
                values.append(value[0] if value else b"")
            else:
                values.append(float(value[0]) if value else math.nan)
        columns[name] = tf.constant(values, dtype=spec.dtype)
    return columns


def test_pushed_model_signatures_agree_on_eval_rows(penguin_runs):
    model = tf.saved_model.load(pushed_versions(penguin_runs.workdir)[-1])
    records = eval_examples(penguin_runs.workdir)
    assert len(records) > 20
    from_examples = model.signatures["serving_default"](examples=tf.constant(records))
    raw = model.signatures["serving_raw"]
    from_raw = raw(**dense_inputs(records, raw))
    np.testing.assert_allclose(from_examples["probabilities"].numpy(), from_raw["probabilities"].numpy(), atol=1e-6)
    assert list(from_examples["classes"].numpy()) == list(from_raw["classes"].numpy())
    assert set(from_examples["classes"].numpy()) <= {b"Adelie", b"Chinstrap", b"Gentoo"}


def test_pushed_model_loads_the_tf1_way(penguin_runs):
    """tfx_bsl and other TF1-style consumers load SavedModels in a Session; it must work for keel's."""
    export_dir = pushed_versions(penguin_runs.workdir)[-1]
    records = eval_examples(penguin_runs.workdir)[:8]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        outputs = session.run(signature.outputs["probabilities"].name, {signature.inputs["examples"].name: records})
    assert outputs.shape == (8, 3)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=1e-5)


def test_a_model_below_the_bar_is_not_blessed_or_pushed(penguin_runs):
    run = penguin_runs.unblessed
    assert run.returncode == 0, run.stderr[-3000:]
    assert "blessed: no (sparse_categorical_accuracy value" in run.stdout
    assert "pushed: nothing (the model was not blessed)" in run.stdout
    assert len(pushed_versions(penguin_runs.workdir)) == 2
