"""The XLA probe's measurements, kept in WORKDIR/cache/xla_probe/ and reused by later Trainer runs.

One JSON file per key. The key is everything that changes the training step's graph or where it
runs: the model code's sha256, the hparams, the global batch size, the features as the model sees
them, the task, precision and label scaling, the device kind and count, and the stack's versions.
The planned number of steps is not part of it: the choice is computed again from the cached step
times and compile cost for each run's steps. Files are written atomically (a temporary file, then
os.replace), so a killed run leaves either the old file or the new one.
"""

import dataclasses
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

CUSTOM_CONFIG_KEY = "keel_xla_probe_cache"  # the Trainer's custom_config: the directory to keep results in
PROBE_METHOD = 3  # bump when the measurement changes, so older measurements are not reused

# learning_rate is a pure optimizer scalar: Keras keeps it in a variable the compiled step reads, so
# its value changes neither the graph nor the step's cost, and a learning-rate experiment reuses the
# probe. Every other hparam may shape the model (layer sizes, depth) and is part of the key.
NOT_IN_KEY = frozenset({"learning_rate"})


def device_kind(device: str, replicas: int) -> dict:
    """What the steps run on: the device type and count, and the GPU's model or the CPU's architecture."""
    import tensorflow as tf

    found = {"device": device, "replicas": replicas}
    if device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        details = tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
        found["model"] = details.get("device_name", "unknown")
    else:
        found["model"] = f"{platform.machine()} {platform.processor() or ''}".strip()
        found["cpus"] = os.cpu_count()
    return found


def stack_versions() -> dict:
    """The versions whose compilers and kernels the measurement depends on."""
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "python": platform.python_version()}


def key_fields(
    module_sha256: str, hparams: dict, batch_size: int, features: dict, training: dict, device: dict, stack: dict
) -> dict:
    """The plain data the cache key is the hash of (also stored in the file, to say what it was measured for)."""
    return {
        "probe_method": PROBE_METHOD,
        "module_sha256": module_sha256,
        "hparams": {k: v for k, v in sorted(hparams.items()) if k not in NOT_IN_KEY},
        "global_batch_size": batch_size,
        "features": features,
        "training": training,
        "device": device,
        "stack": stack,
    }


@dataclasses.dataclass(frozen=True)
class ProbeCache:
    """The cache file for one key in `directory`."""

    directory: Path
    fields: dict

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.fields, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def path(self) -> Path:
        return Path(self.directory) / f"{self.key}.json"

    def load(self) -> dict | None:
        """The stored measurement, or None if there is none (or it cannot be read: it is then measured again)."""
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) and found.get("fields") == self.fields else None

    def save(self, measurement: dict) -> Path:
        """Writes `measurement` (with the key's fields) atomically; returns the file's path."""
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".probe-", suffix=".tmp", delete=False) as f:
            json.dump({"fields": self.fields, **measurement}, f, indent=2, sort_keys=True)
        os.replace(f.name, self.path)
        return self.path
