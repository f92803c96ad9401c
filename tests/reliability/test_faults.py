"""Faults: `kill -9` of `keel run` mid-component and mid-push, two runs on one workdir, `kill -9` and
a graceful stop of `keel serve` under load. Nothing finished is lost (a `kill -9` of the server at most one
batch of request-log records), nothing half-written is used."""

import asyncio
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import tensorflow as tf
from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog

from keel.serving.request_log import MAX_UNFLUSHED
from keel.serving.versions import chosen_version, versions

from checks import node_states_of_all_runs, nothing_half_written, one_line_error
from helpers import TABULAR, keel, node_states, penguin_data, penguin_spec, write_spec
from processes import Run
from serving_helpers import FEATURES, Server, eval_examples, instance, logged_requests, serving_copy

BALLAST_MB = 256
BALLAST = f'''
import importlib.util

import keras

_spec = importlib.util.spec_from_file_location("tabular", {str(TABULAR)!r})
tabular = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tabular)


class Ballast(keras.layers.Layer):
    """{BALLAST_MB} MB of frozen zeros: a model big enough that copying it takes a while."""

    def build(self, shape):
        self.ballast = self.add_weight(shape=({BALLAST_MB << 18},), initializer="zeros", trainable=False)

    def call(self, x):
        return x


def build_model(hparams, features):
    model = tabular.build_model(hparams, features)
    return keras.Model(model.inputs, Ballast()(model.outputs[0]))
'''


class Interrupted:
    """One workdir through five runs: killed in Transform, killed in the Trainer, completed (with a
    second run started against the same workdir meanwhile), killed mid-push, completed."""

    def __init__(self, root: Path):
        self.workdir = root / "work"
        spec = penguin_spec(root, threshold=0.5)
        first = Run(spec, self.workdir)
        first.wait_for("Transform", "running")
        time.sleep(2)
        self.transform_killed = first.kill()
        self.after_transform_kill = node_states_of_all_runs(self.workdir)

        second = Run(spec, self.workdir)
        # Killed at its first progress line (step 20 of 200), not after a fixed sleep: a fast stack
        # finishes this Trainer within seconds, and then there is nothing left to interrupt.
        second.wait_for("Trainer: step")
        self.trainer_killed = second.kill()
        self.second_output = "".join(second.lines)
        self.second_states = node_states(self.workdir)

        third = Run(spec, self.workdir)
        third.wait_for("running")
        self.concurrent = keel("run", spec, "--workdir", self.workdir)
        self.third = third.finish()
        self.third_states = node_states(self.workdir)
        self.root = self.workdir / "serving" / "penguin"
        self.first_version = versions(self.root)

        module = root / "ballast.py"
        module.write_text(BALLAST)
        big = write_spec(root / "big.toml", penguin_data(threshold=0.5), {"model.module": str(module)})
        fourth = Run(big, self.workdir)
        fourth.wait_for("Pusher", "running")
        known = set(os.listdir(self.root))
        deadline = time.monotonic() + 300
        while not set(os.listdir(self.root)) - known and time.monotonic() < deadline:
            time.sleep(0.002)
        self.push_killed = fourth.kill()
        self.partial = sorted(set(os.listdir(self.root)) - known)
        self.served_after_push_kill = chosen_version(self.workdir, "penguin", self.root)

        self.fifth = keel("run", big, "--workdir", self.workdir)
        self.fifth_states = node_states(self.workdir)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    return Interrupted(tmp_path_factory.mktemp("interrupted"))


def test_kill_9_during_transform_leaves_nothing_marked_complete(interrupted):
    assert interrupted.transform_killed == -signal.SIGKILL
    states = dict(interrupted.after_transform_kill)
    assert states["Transform"] == "RUNNING" and "Trainer" not in states
    assert [s for n, s in interrupted.after_transform_kill if n != "Transform"] == ["COMPLETE"] * 5


def test_the_run_after_a_kill_reuses_finished_components_and_reruns_the_killed_one(interrupted):
    assert interrupted.trainer_killed == -signal.SIGKILL
    assert "recovered: an earlier run was killed during Transform" in interrupted.second_output
    states = interrupted.second_states
    assert [states[n] for n in ["CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "DataGate"]] == [
        "CACHED"
    ] * 5
    assert states["Transform"] == "COMPLETE" and states["Trainer"] == "RUNNING"


def test_a_second_run_on_a_busy_workdir_fails_at_once_in_one_line(interrupted):
    one_line_error(interrupted.concurrent, "is in use by another keel run (pid", "use another --workdir")
    assert "running" not in interrupted.concurrent.stdout


def test_the_third_run_completes_from_the_killed_runs_work(interrupted):
    result, states = interrupted.third, interrupted.third_states
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recovered: an earlier run was killed during Trainer" in result.stdout
    assert states["Transform"] == "CACHED"
    assert states["Trainer"] == states["Evaluator"] == states["Pusher"] == "COMPLETE"
    assert len(interrupted.first_version) == 1


def test_kill_9_during_a_push_leaves_serving_on_the_previous_version(interrupted):
    assert interrupted.push_killed == -signal.SIGKILL
    (partial,) = interrupted.partial
    assert not (interrupted.root / partial / "saved_model.pb").exists(), "the kill came after the copy finished"
    assert interrupted.served_after_push_kill == interrupted.first_version[0]


def test_the_next_run_pushes_cleanly_and_serving_moves_to_it(interrupted):
    result, states = interrupted.fifth, interrupted.fifth_states
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recovered: an earlier run was killed during Pusher" in result.stdout
    partial = interrupted.root / interrupted.partial[0]
    assert f"recovered: removed 1 partial version(s) an interrupted push left: {partial}" in result.stdout
    assert not partial.exists()
    assert states["Trainer"] == states["Evaluator"] == "CACHED" and states["Pusher"] == "COMPLETE"
    available = versions(interrupted.root)
    assert len(available) == 2 and available[0] == interrupted.first_version[0]
    assert chosen_version(interrupted.workdir, "penguin", interrupted.root) == available[1]
    loaded = tf.saved_model.load(str(interrupted.root / available[1]))
    assert "serving_raw" in loaded.signatures


def test_ml_metadata_is_consistent_after_every_kill(interrupted):
    nothing_half_written(interrupted.workdir)
    states = node_states_of_all_runs(interrupted.workdir)
    assert [n for n, s in states if s == "CANCELED"] == ["Transform", "Trainer", "Pusher"]
    assert not [n for n, s in states if s in ("RUNNING", "NEW")]


async def _hammer(url: str, rows: list[dict], total: int, concurrency: int) -> tuple[list[str], list[str]]:
    """Sends `total` single-row predicts, `concurrency` at a time; returns (answered ids, failures)."""
    answered, failures = [], []
    numbers = iter(range(total))

    async def worker(client):
        for i in numbers:
            request_id = f"load-{i}"
            try:
                response = await client.post(
                    "/v1/models/penguin:predict",
                    json={"instances": [rows[i % len(rows)]]},
                    headers={"X-Request-Id": request_id},
                )
            except httpx.HTTPError as e:
                failures.append(f"{request_id}: {e.__class__.__name__}")
                continue
            if response.status_code == 200:
                answered.append(request_id)
            else:
                failures.append(f"{request_id}: {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return answered, failures


@pytest.fixture(scope="module")
def rows(penguin_runs):
    return [instance(e, FEATURES) for e in eval_examples(penguin_runs.workdir)]


def test_10k_requests_at_64_concurrent_all_answered_and_all_logged_through_a_graceful_stop(
    penguin_runs, rows, tmp_path
):
    server = Server(serving_copy(penguin_runs.workdir, tmp_path / "work"), tmp_path / "logs")
    try:
        answered, failures = asyncio.run(_hammer(server.url, rows, 10_000, 64))
    finally:
        code, out = server.stop()  # SIGTERM right after the last answer, before the log writer catches up
    assert failures == [] and len(answered) == 10_000
    assert code in (0, -15) and "stopped: answered 10000 predict requests" in out
    logged = [r.predict_log.request.client_id.decode() for r in logged_requests(server.log_dir)]
    assert sorted(logged) == sorted(answered), "a graceful stop must not lose a logged request"


def test_kill_9_of_the_server_under_load_loses_at_most_one_batch_and_monitor_reads_the_logs(
    penguin_runs, rows, tmp_path
):
    server = Server(serving_copy(penguin_runs.workdir, tmp_path / "work"), tmp_path / "logs")
    answered: list[str] = []

    async def traffic(concurrency: int = 64):
        async def worker(client, number):
            for i in range(100_000):
                try:
                    response = await client.post(
                        "/v1/models/penguin:predict",
                        json={"instances": [rows[i % len(rows)]]},
                        headers={"X-Request-Id": f"{number}-{i}"},
                    )
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    answered.append(f"{number}-{i}")

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=limits) as client:
            await asyncio.gather(*(worker(client, n) for n in range(concurrency)))

    sender = threading.Thread(target=asyncio.run, args=(traffic(),))
    sender.start()
    while len(answered) < 1000:
        time.sleep(0.05)
    server.process.send_signal(signal.SIGKILL)
    sender.join(60)
    assert server.process.wait(60) == -signal.SIGKILL

    logged = set()
    for path in sorted(server.log_dir.glob("prediction_log-*.tfrecord")):
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                logged.add(PredictionLog.FromString(record.numpy()).predict_log.request.client_id.decode())
        except tf.errors.DataLossError:  # the record the kill cut short
            pass
    lost = sorted(set(answered) - logged)
    print(f"kill -9 under 64 concurrent clients: {len(answered)} answered, {len(lost)} of them not in the log")
    assert len(lost) <= MAX_UNFLUSHED, lost

    def monitored_requests(logs: Path) -> tuple[int, str]:
        result = keel("monitor", "--workdir", penguin_runs.workdir, "--logs", logs, "--out", tmp_path / "report")
        assert result.returncode in (0, 3) and "Traceback" not in result.stderr, result.stderr[-3000:]
        return int(re.search(r"rows in (\d+) requests", result.stdout).group(1)), result.stdout

    after_kill, _ = monitored_requests(server.log_dir)
    assert after_kill == len(logged) and 0 < after_kill <= len(answered)

    # A write cut short (the kill landing mid-record): the complete records before it still count.
    torn = tmp_path / "torn-logs"
    shutil.copytree(server.log_dir, torn)
    last = sorted(torn.iterdir())[-1]
    data = last.read_bytes()
    record = data[: 16 + int.from_bytes(data[:8], "little")]  # length, its CRC, data, its CRC
    with open(last, "ab") as f:
        f.write(record[: len(record) // 2])
    after_tear, output = monitored_requests(torn)
    assert f"skipped the torn last record of {last}" in output
    assert after_tear == after_kill
