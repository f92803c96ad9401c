"""`[train] workers`: the training cluster's shape, as TF_CONFIG describes it to every process.

Vertex AI gives each replica of a custom job a TF_CONFIG: worker pool 0 is the `chief`, pool 1 the
`worker`s. A local run with `workers = N` starts N processes on 127.0.0.1 with the same shape, so
the code that runs on a Vertex pool is the code a workstation tests. Pure logic, no TensorFlow.
"""

import json
import os
import signal
import socket

from keel.core.errors import SpecError

LOCALHOST = "127.0.0.1"


def check_workers(workers: int, backend: str, accelerator: str) -> None:
    """Raises SpecError where `train.workers` > 1 cannot be honoured."""
    if workers <= 1:
        return
    if backend != "tensorflow":
        raise SpecError(
            f"train.workers = {workers}: several training processes are TensorFlow's MultiWorkerMirroredStrategy; "
            f'backend = "{backend}" trains in one process (use backend = "tensorflow", or workers = 1)'
        )
    if accelerator == "tpu":
        raise SpecError(
            f"train.workers = {workers}: a TPU trains under TPUStrategy, which spans a TPU's hosts by itself; "
            "use workers = 1 with accelerator = 'tpu'"
        )


def free_ports(count: int) -> list[int]:
    """`count` TCP ports on 127.0.0.1 that nothing listens on now (the kernel picks them)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((LOCALHOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_configs(ports: list[int]) -> list[dict]:
    """One TF_CONFIG per process, Vertex AI's shape: the first port the chief's, the others workers'."""
    addresses = [f"{LOCALHOST}:{port}" for port in ports]
    cluster = {"chief": addresses[:1], "worker": addresses[1:]} if len(addresses) > 1 else {"chief": addresses}
    configs = [{"cluster": cluster, "task": {"type": "chief", "index": 0}}]
    configs += [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(len(addresses) - 1)]
    return configs


def _parsed(tf_config: str | None) -> dict:
    """`tf_config` (default: the TF_CONFIG variable) as data; {} where it is unset or blank."""
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    return json.loads(text) if text.strip() else {}


def is_chief(tf_config: str | None = None) -> bool:
    """Whether this process writes the model: no cluster, the `chief` (or legacy `master`), or worker 0
    of a cluster without a chief (MultiWorkerMirroredStrategy's rule)."""
    config = _parsed(tf_config)
    cluster, task = config.get("cluster") or {}, config.get("task") or {}
    if not cluster:
        return True
    kind, index = task.get("type"), task.get("index", 0)
    if kind in ("chief", "master"):
        return True
    return kind == "worker" and index == 0 and not (cluster.get("chief") or cluster.get("master"))


def cluster_size(tf_config: str | None = None) -> int:
    """How many processes train together: the cluster's chief and workers (1 without a cluster)."""
    cluster = _parsed(tf_config).get("cluster") or {}
    return max(1, sum(len(cluster.get(kind) or ()) for kind in ("chief", "master", "worker")))


def role(tf_config: dict) -> str:
    """`chief` or `worker N` (N counted from 1, as a user counts the processes)."""
    task = tf_config["task"]
    return "chief" if task["type"] == "chief" else f"worker {task['index'] + 1}"


def how_it_ended(returncode: int, last_line: str) -> str:
    """A process's end in words: `was killed by SIGKILL`, or `exited with status 1: <its last line>`."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    said = f": {last_line.strip()[:300]}" if last_line.strip() else ""
    return f"exited with status {returncode}{said}"
