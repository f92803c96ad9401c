"""A real `keel serve` subprocess on 127.0.0.1 for the serving and monitoring tests, and eval rows."""

import glob
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import tensorflow as tf

START_SECONDS = 120


class Server:
    """`keel serve --port 0` in a subprocess; the port is read from its ready line.

    `workdir` None leaves --workdir out, for servers given their models another way (`args`).
    """

    def __init__(self, workdir: Path | None, log_dir: Path, *args: str):
        self.log_dir = log_dir
        self.out_file = log_dir.parent / f"{log_dir.name}.serve.out"
        self.err_file = log_dir.parent / f"{log_dir.name}.serve.err"
        with open(self.out_file, "w") as out, open(self.err_file, "w") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "keel.cli",
                    "serve",
                    *(["--workdir", str(workdir)] if workdir is not None else []),
                    "--port",
                    "0",
                    "--grpc-port",
                    "0",
                    "--log-dir",
                    str(log_dir),
                    "--poll-seconds",
                    "0.5",
                    *args,
                ],
                stdout=out,
                stderr=err,
                text=True,
            )
        self.ready_line = self._wait_ready()
        self.url = self.ready_line.split(" at ", 1)[1].split()[0]
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def output(self) -> str:
        return self.out_file.read_text()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            ready = [line for line in self.output().splitlines() if line.startswith("serving ")]
            if ready:
                return ready[0]
            if self.process.poll() is not None:
                raise AssertionError(
                    f"keel serve exited {self.process.returncode}: {self.err_file.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        self.process.kill()
        raise AssertionError("keel serve did not become ready")

    def predict(self, body, path: str = "/v1/models/penguin:predict", **kwargs) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a process manager would send; returns the exit code and everything it printed."""
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return self.process.returncode, self.output()


def grpc_address(server: Server) -> str:
    """host:port of the gRPC API, from the ready line ("... (gRPC 127.0.0.1:PORT; ...)")."""
    found = re.search(r"\(gRPC (\S+?);", server.ready_line)
    assert found, server.ready_line
    return found.group(1)


def serving_copy(workdir: Path, into: Path) -> Path:
    """A copy of `workdir`'s pushed models and ML Metadata (the registry), for tests that push or promote."""
    shutil.copytree(workdir / "serving", into / "serving")
    shutil.copy(workdir / "metadata.sqlite", into / "metadata.sqlite")
    return into


def eval_examples(workdir: Path) -> list[tf.train.Example]:
    files = sorted(glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*.gz")))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def instance(example: tf.train.Example, features: list[str]) -> dict:
    """The TF Serving row-form instance of a tf.Example: its scalar values, missing as null."""
    found = {}
    for name in features:
        feature = example.features.feature.get(name)
        kind = feature.WhichOneof("kind") if feature is not None else None
        values = list(getattr(feature, kind).value) if kind else []
        value = values[0] if values else None
        found[name] = value.decode() if isinstance(value, bytes) else value
    return found


def label(example: tf.train.Example, name: str = "species") -> str:
    return example.features.feature[name].bytes_list.value[0].decode()


FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]


def logged_requests(log_dir: Path):
    """Every PredictionLog record under `log_dir`."""
    from tensorflow_serving.apis import prediction_log_pb2

    found = []
    for path in sorted(log_dir.glob("prediction_log-*.tfrecord")):
        found += [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    return found


def wait_for_logged(log_dir: Path, count: int, seconds: float = 30) -> list:
    """Polls until `count` records are in the logs (the writer flushes once its queue is empty)."""
    deadline = time.monotonic() + seconds
    while True:
        records = logged_requests(log_dir)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def grpc_served(workdir: Path, root: Path) -> Server:
    """A `keel serve` of a copy of `workdir`'s pushed models, with TF Serving's gRPC stubs attached."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    server = Server(serving_copy(workdir, root / "work"), root / "logs")
    server.channel = grpc.insecure_channel(grpc_address(server))
    server.predictions = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    server.models = model_service_pb2_grpc.ModelServiceStub(server.channel)
    server.version = server.client.get("/v1/models/penguin").json()["model_version_status"][0]["version"]
    return server


def shifted_instance(example, index: int) -> dict:
    """The eval row as a predict instance, shifted as the monitoring tests shift traffic: body_mass_g
    x1.5, and every other row (even `index`) from an island training never saw."""
    row = instance(example, FEATURES)
    if row["body_mass_g"] is not None:
        row["body_mass_g"] *= 1.5
    if index % 2 == 0:
        row["island"] = "Atlantis"
    return row
