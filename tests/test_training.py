"""Training placement, XLA choice and precision: real strategies, real probes, real pipeline runs."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keel.core.errors import AcceleratorError
from keel.executors.training.jit import MARGIN, choose_jit
from keel.executors.training.record import read_training_record
from keel.executors.training.strategy import local_tpu_devices, resolve_strategy

from helpers import accelerator_present, penguin_spec, pushed_versions

# Logical devices must be configured before TensorFlow initialises its devices: its own process.
TWO_LOGICAL_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keel.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_mirrored_strategy_over_two_logical_cpus_trains_penguin_to_the_bar(tmp_path):
    spec = penguin_spec(
        tmp_path,
        # The probe budget lifted: this checks what the probe says when XLA cannot compile the model.
        {"train.batch_size": 16, "train.accelerator": "cpu", "train.jit_compile": "auto", "train.jit_probe_budget": 10},
        steps=150,
        threshold=0.9,
    )
    workdir = tmp_path / "work"
    run = subprocess.run(
        [sys.executable, "-c", TWO_LOGICAL_CPUS, "run", str(spec), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "training: MirroredStrategy on 2 CPU replicas, float32, global batch 32" in run.stdout
    assert "blessed: yes" in run.stdout
    accuracy = float(re.search(r"eval: sparse_categorical_accuracy ([0-9.]+)", run.stdout).group(1))
    assert accuracy >= 0.9

    model_uri = next((workdir / "pipeline" / "Trainer" / "model").iterdir())
    record = read_training_record(str(model_uri))
    assert record["placement"] == {"strategy": "MirroredStrategy", "device": "cpu", "replicas": 2}
    assert record["global_batch_size"] == 32
    # XLA cannot place a step whose variables live on two logical CPU devices (XLA known issue
    # "tf.Variable on a different device"), so the probe falls back to graph mode and says why.
    assert record["jit"]["jit_compile"] is False and "graph" in record["jit"]["probe"]
    assert record["jit"]["reason"].startswith("XLA cannot compile the model: Trying to access resource")
    model_run = json.loads(next((workdir / "pipeline" / "Trainer" / "model_run").glob("*/training.json")).read_text())
    assert model_run["placement"] == record["placement"] and model_run["jit"] == record["jit"]

    pushed = pushed_versions(workdir)[-1]
    assert json.loads((Path(pushed) / "assets.extra" / "keel_training.json").read_text()) == record
    served = tf.saved_model.load(pushed).signatures["serving_default"]
    records = [
        r.numpy()
        for r in tf.data.TFRecordDataset(
            sorted(workdir.glob("pipeline/CsvExampleGen/examples/*/Split-eval/*.gz")), compression_type="GZIP"
        )
    ]
    probabilities = served(examples=tf.constant(records))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def _tiny_model(jit: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(16,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit)
    return model


def _tiny_dataset() -> tf.data.Dataset:
    x = np.random.default_rng(0).normal(size=(256, 16)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int64"))).batch(32).repeat()


def test_auto_jit_times_both_modes_and_picks_the_faster_over_the_planned_steps():
    planned = 500
    choice = choose_jit("auto", _tiny_model, _tiny_dataset, planned, budget=None)
    graph, xla = choice.probe
    assert (graph.jit_compile, xla.jit_compile) == (False, True)
    # XLA's compilation is a fixed cost, counted apart from the steady step.
    assert xla.fixed_s > xla.step_s > 0 and graph.step_s > 0
    # XLA only when predicted more than the margin faster; graph mode, the default, otherwise.
    assert choice.jit_compile == (xla.predicted_s(planned) * (1 + MARGIN) <= graph.predicted_s(planned))
    assert choice.as_dict()["probe"]["xla"] == {
        "fixed_s": round(xla.fixed_s, 4),
        "step_ms": round(xla.step_s * 1000, 4),
        "predicted_s": round(xla.predicted_s(planned), 3),
    }
    assert re.fullmatch(
        r"(XLA|graph mode) measured [0-9.]+x faster over 500 steps|graph mode kept \(the default\): XLA measured "
        r"only [0-9.]+x faster over 500 steps, within the 3% margin",
        choice.reason,
    )


def test_a_short_training_keeps_graph_mode_without_compiling_xla():
    built = []

    def model(jit: bool) -> keras.Model:
        built.append(jit)
        return _tiny_model(jit)

    started = time.perf_counter()
    choice = choose_jit("auto", model, _tiny_dataset, 50)
    spent = time.perf_counter() - started
    assert built == [False] and choice.jit_compile is False  # XLA's model was never built, let alone compiled
    (graph,) = choice.probe
    match = re.fullmatch(
        r"graph mode kept \(the default\) without timing XLA: 50 steps are predicted to take ([0-9.]+)s, and timing "
        r"XLA would cost about ([0-9.]+)s, over the 5% budget \(train.jit_probe_budget\)",
        choice.reason,
    )
    assert match, choice.reason
    predicted, cost = float(match.group(1)), float(match.group(2))
    assert cost > 0.05 * predicted and predicted == round(graph.predicted_s(50), 1)
    # What was measured is graph mode's warm-up and one window: less than the full probe it avoided.
    assert spent < cost


ACCELERATOR = accelerator_present()
NO_ACCELERATOR = pytest.mark.skipif(
    ACCELERATOR is not None, reason=f"asserts what keel does without an accelerator; this host has a {ACCELERATOR}"
)
NO_TPU = pytest.mark.skipif(bool(local_tpu_devices()), reason="asserts what keel does without a TPU; this host has one")


@NO_TPU
def test_asking_for_a_tpu_where_there_is_none_fails_at_once():
    with pytest.raises(AcceleratorError, match=r"^train.accelerator = 'tpu': this machine has no TPU"):
        resolve_strategy("tpu", "local")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AcceleratorError, match=rf"^train.tpu = 'grpc://127.0.0.1:{port}': no TPU answers"):
        resolve_strategy("tpu", f"grpc://127.0.0.1:{port}")


@NO_TPU
def test_keel_run_asking_for_a_tpu_exits_2_before_running_anything(tmp_path):
    spec = penguin_spec(tmp_path, {"train.accelerator": "tpu"})
    run = subprocess.run(
        [sys.executable, "-m", "keel.cli", "run", str(spec), "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: train.accelerator = 'tpu': this machine has no TPU (no /dev/accel* or /dev/vfio/N device); run on "
        "a TPU VM, set train.tpu to a TPU name or grpc://HOST:PORT, or use accelerator = 'auto'"
    ]
    assert not (tmp_path / "w" / "pipeline").exists()


@NO_ACCELERATOR
def test_auto_on_this_machine_is_the_default_strategy_on_the_cpu():
    placement = resolve_strategy("auto")
    assert placement.as_dict() == {"strategy": "default strategy", "device": "cpu", "replicas": 1}
    with pytest.raises(AcceleratorError, match="TensorFlow sees no GPU"):
        resolve_strategy("gpu")


@NO_ACCELERATOR
def test_tf_config_selects_multi_worker_mirrored_strategy(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}})
    script = textwrap.dedent("""
        import json
        from keel.executors.training.strategy import resolve_strategy
        print(json.dumps(resolve_strategy("auto").as_dict()))
    """)
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CONFIG": tf_config},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {
        "strategy": "MultiWorkerMirroredStrategy",
        "device": "cpu",
        "replicas": 1,
    }
