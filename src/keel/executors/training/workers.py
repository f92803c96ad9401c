"""A local run with `[train] workers = N`: the Trainer as N processes on 127.0.0.1, as on a Vertex AI pool.

TFX's Vertex AI Trainer runs `python -m tfx.scripts.run_executor` with TFX's GenericExecutor in every
replica of a custom job, and Vertex gives each replica its TF_CONFIG. `Executor` does the same on
this machine: N processes with one TF_CONFIG each (keel.executors.training.cluster), all running
keel's run_fn, which trains under MultiWorkerMirroredStrategy. The chief's progress lines pass
through. When a process fails or is killed, the others would wait for it forever (every step
all-reduces across all of them), so they are stopped and the Trainer fails in one line that names
the process and how it ended; no model is published, and the next run trains again.
"""

import collections
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time

from tfx import v1 as tfx
from tfx.components.trainer import executor as tfx_trainer
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.utils import json_utils, name_utils, path_utils

from keel.core import errors
from keel.executors.training.cluster import free_ports, how_it_ended, local_tf_configs, role
from keel.executors.training.worker import PARENT_ENV

PROGRESS_PREFIX = "    Trainer:"
POLL_S = 0.2
GRACE_S = 2.0  # after a first failure, how long the others get to show theirs (the root cause may be another's)
STOP_S = 10.0  # SIGTERM, then SIGKILL after this long
_KEEL_ERROR = re.compile(r"^(?:keel\.core\.errors\.)?(?P<kind>[A-Za-z]+Error): (?P<message>.+)$")


class _Process:
    """One training process, its output read on a thread: progress forwarded (chief) and a tail kept."""

    def __init__(self, command: list[str], tf_config: dict, port: int, forward: bool):
        self.role, self.port = role(tf_config), port
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), PARENT_ENV: str(os.getpid())}
        self.popen = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.reader = threading.Thread(target=self._read, args=(forward,), daemon=True)
        self.reader.start()

    def _read(self, forward: bool) -> None:
        for line in self.popen.stdout:
            if forward and line.startswith(PROGRESS_PREFIX):
                print(line, end="", flush=True)
            self.tail.append(line.rstrip())
            logging.info("%s: %s", self.role, line.rstrip())  # the run's log keeps every line

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def error(self, workers: int) -> errors.KeelError:
        """What this failed process says: its own KeelError where it raised one, else how it ended."""
        self.reader.join(timeout=5)
        code = self.popen.returncode
        if code > 0:
            for line in reversed(self.tail):
                found = _KEEL_ERROR.match(line)
                kind = getattr(errors, found["kind"], None) if found else None
                if isinstance(kind, type) and issubclass(kind, errors.KeelError):
                    return kind(found["message"])
        last = next((line for line in reversed(self.tail) if line.strip()), "")
        return errors.TrainingError(
            f"train.workers = {workers}: training process {self.role} (pid {self.popen.pid}) {how_it_ended(code, last)} "
            "while training; every step needs every process, so the others were stopped and no model was "
            "published; run again to train anew"
        )


def _first_failure(processes: list[_Process]) -> _Process | None:
    """The process whose failure explains the others': a killed one first, else the first that failed."""
    failed = [p for p in processes if p.popen.returncode not in (None, 0)]
    killed = [p for p in failed if p.popen.returncode < 0]
    return (killed or failed or [None])[0]


def _command(input_dict, output_dict, exec_properties) -> list[str]:
    """What every replica of TFX's Vertex AI Trainer job runs (tfx.extensions.google_cloud_ai_platform),
    through keel.executors.training.worker, which ends the process when this one dies."""
    return [
        sys.executable,
        "-m",
        "keel.executors.training.worker",
        "--executor_class_path",
        name_utils.get_full_name(tfx_trainer.GenericExecutor),
        "--inputs",
        artifact_utils.jsonify_artifact_dict(input_dict),
        "--outputs",
        artifact_utils.jsonify_artifact_dict(output_dict),
        "--exec-properties",
        json.dumps(exec_properties, sort_keys=True),
    ]


def train_in_processes(input_dict, output_dict, exec_properties, workers: int) -> None:
    """Runs the Trainer in `workers` processes on 127.0.0.1; raises a KeelError if any of them fails."""
    command = _command(input_dict, output_dict, exec_properties)
    ports = free_ports(workers)
    processes: list[_Process] = []
    try:
        for index, (tf_config, port) in enumerate(zip(local_tf_configs(ports), ports, strict=True)):
            processes.append(_Process(command, tf_config, port, forward=index == 0))
        where = ", ".join(f"{p.role} pid {p.popen.pid} port {p.port}" for p in processes)
        print(f"{PROGRESS_PREFIX} {workers} training processes on 127.0.0.1 ({where})", flush=True)
        while any(p.popen.poll() is None for p in processes):
            if _first_failure(processes):
                deadline = time.monotonic() + GRACE_S
                while time.monotonic() < deadline and any(p.popen.poll() is None for p in processes):
                    time.sleep(POLL_S)
                break
            time.sleep(POLL_S)
        failed = _first_failure(processes)
        if failed:
            raise failed.error(workers)
    finally:
        for p in processes:
            p.stop()


class Executor(tfx_trainer.GenericExecutor):
    """TFX's GenericExecutor, run in `workers` local processes when the Trainer's config asks for more than one."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX's name)
        custom_config = json_utils.loads(exec_properties.get("custom_config") or "null") or {}
        workers = int(custom_config.get("workers", 1))
        if workers <= 1 or os.environ.get("TF_CONFIG"):
            return super().Do(input_dict, output_dict, exec_properties)
        self._log_startup(input_dict, output_dict, exec_properties)
        train_in_processes(input_dict, output_dict, exec_properties, workers)
        model_dir = path_utils.serving_model_dir(artifact_utils.get_single_uri(output_dict["model"]))
        if not os.path.isdir(model_dir):
            raise errors.TrainingError(
                f"train.workers = {workers}: the chief finished but wrote no model to {model_dir}"
            )


class Trainer(tfx.components.Trainer):
    """TFX's Trainer with `Executor`: what a local run with `[train] workers` > 1 places in its pipeline."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
