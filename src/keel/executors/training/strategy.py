"""`train.accelerator` and `train.tpu` -> the tf.distribute strategy the Trainer builds its model under.

- a TPU (asked for, or found by "auto"): TPUClusterResolver, initialize_tpu_system, TPUStrategy;
- TF_CONFIG set: MultiWorkerMirroredStrategy (one replica per worker device, synchronous);
- several GPUs (or, with accelerator "cpu", several logical CPU devices): MirroredStrategy;
- otherwise the default strategy (one device; TensorFlow places ops on the GPU if there is one).

Asking for a TPU where none is reachable fails at once with an AcceleratorError: the machine is
checked for TPU device files, and a grpc:// address for an open port, before TensorFlow is asked
to connect, which would otherwise wait indefinitely for a TPU that is not there.
"""

import dataclasses
import glob
import json
import os
import socket
from urllib.parse import urlparse

import tensorflow as tf

from keel.core.errors import AcceleratorError
from keel.executors.training.cluster import cluster_size

ACCELERATORS = ("auto", "cpu", "gpu", "tpu")
CONNECT_TIMEOUT_S = 10.0
NO_GPU = "train.accelerator = 'gpu': TensorFlow sees no GPU on this machine; use accelerator = 'auto' or 'cpu'"

# The names users know, for the classes that implement them.
STRATEGY_NAMES = {
    "_DefaultDistributionStrategy": "default strategy",
    "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",
}

# initialize_tpu_system resets the TPU; a process that trains twice (a notebook) does it once per TPU.
_tpu_strategies: dict[str, tf.distribute.Strategy] = {}


@dataclasses.dataclass(frozen=True)
class Placement:
    """The strategy to build and train under, and what it runs on."""

    strategy: tf.distribute.Strategy
    device: str  # "tpu" | "gpu" | "cpu"
    replicas: int
    note: str = ""  # why this placement, when it is not the obvious one
    workers: int = 1  # processes training together (MultiWorkerMirroredStrategy: TF_CONFIG's cluster)

    @property
    def strategy_name(self) -> str:
        name = type(self.strategy).__name__.removesuffix("V2")
        return STRATEGY_NAMES.get(name, name)

    def as_dict(self) -> dict:
        return {
            "strategy": self.strategy_name,
            "device": self.device,
            "replicas": self.replicas,
            **({"workers": self.workers} if self.workers > 1 else {}),
            **({"note": self.note} if self.note else {}),
        }


def local_tpu_devices() -> list[str]:
    """TPU device files on this machine (TPU VMs: /dev/accel*, or /dev/vfio/N on newer chips)."""
    return sorted(glob.glob("/dev/accel[0-9]*") + glob.glob("/dev/vfio/[0-9]*"))


def _check_tpu_reachable(tpu: str) -> None:
    """Fails fast where TensorFlow would hang: no local TPU, or a grpc:// address nobody listens on."""
    if tpu == "local":
        if not local_tpu_devices():
            raise AcceleratorError(
                "train.accelerator = 'tpu': this machine has no TPU (no /dev/accel* or /dev/vfio/N device); "
                "run on a TPU VM, set train.tpu to a TPU name or grpc://HOST:PORT, or use accelerator = 'auto'"
            )
        return
    if tpu.startswith("grpc://"):
        address = urlparse(tpu)
        if not address.hostname or not address.port:
            raise AcceleratorError(f"train.tpu: got {tpu!r}; expected 'local', a TPU name, or grpc://HOST:PORT")
        try:
            socket.create_connection((address.hostname, address.port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise AcceleratorError(
                f"train.tpu = {tpu!r}: no TPU answers at {address.hostname}:{address.port} "
                f"({e.strerror or e.__class__.__name__})"
            ) from None


def check_accelerator(accelerator: str, tpu: str) -> None:
    """The cheap part of resolve_strategy, for a runner to call before any component runs.

    Raises AcceleratorError where a TPU or GPU asked for is certainly not there; the Trainer still
    resolves the strategy itself, on the machine it runs on.
    """
    if accelerator == "tpu":
        _check_tpu_reachable(tpu)
    elif accelerator == "gpu" and not tf.config.list_physical_devices("GPU"):
        raise AcceleratorError(NO_GPU)


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
    if tpu in _tpu_strategies:
        return _tpu_strategies[tpu]
    _check_tpu_reachable(tpu)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, OSError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise AcceleratorError(f"train.tpu = {tpu!r}: cannot initialise the TPU: {reason[:300]}") from None
    strategy = tf.distribute.TPUStrategy(resolver)
    _tpu_strategies[tpu] = strategy
    return strategy


def _multi_worker() -> tf.distribute.Strategy:
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
        raise AcceleratorError(f"TF_CONFIG is not valid JSON ({e.msg}); unset it to train on one machine") from None
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError) as e:
        raise AcceleratorError(f"TF_CONFIG is set but MultiWorkerMirroredStrategy cannot start: {e}") from None


def resolve_strategy(accelerator: str = "auto", tpu: str = "local") -> Placement:
    """The Placement for the spec's `train.accelerator` and `train.tpu`; raises AcceleratorError."""
    if accelerator not in ACCELERATORS:
        raise AcceleratorError(f"train.accelerator: got {accelerator!r}; expected one of: {', '.join(ACCELERATORS)}")
    note = ""
    if accelerator == "tpu" or (accelerator == "auto" and (tpu != "local" or local_tpu_devices())):
        try:
            strategy = _tpu_strategy(tpu)
            return Placement(strategy, "tpu", strategy.num_replicas_in_sync)
        except AcceleratorError as e:
            if accelerator == "tpu":
                raise
            note = f"no TPU used: {e}"
    if os.environ.get("TF_CONFIG"):
        strategy = _multi_worker()
        device = "gpu" if accelerator != "cpu" and tf.config.list_logical_devices("GPU") else "cpu"
        return Placement(strategy, device, strategy.num_replicas_in_sync, note, cluster_size())
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if accelerator == "gpu" and not gpus:
        raise AcceleratorError(NO_GPU)
    if gpus and accelerator != "cpu":
        if len(gpus) > 1:
            return Placement(tf.distribute.MirroredStrategy(gpus), "gpu", len(gpus), note)
        return Placement(tf.distribute.get_strategy(), "gpu", 1, note)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) > 1:
        return Placement(tf.distribute.MirroredStrategy(cpus), "cpu", len(cpus), note)
    if gpus:  # accelerator "cpu" on a machine with a GPU: keep the GPU out of it
        return Placement(tf.distribute.OneDeviceStrategy(cpus[0]), "cpu", 1, note)
    return Placement(tf.distribute.get_strategy(), "cpu", 1, note)
