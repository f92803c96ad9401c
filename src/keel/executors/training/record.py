"""What the Trainer decided about placement, precision and XLA, kept with the model it trained.

The record is written into the SavedModel's `assets.extra/` (so it travels with every pushed
version; TF Serving ignores the directory's other files) and merged into the Trainer's
`model_run/training.json`. The run summary shows it as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # reading a record back (the run summary) needs no TensorFlow
    from keel.executors.training.jit import JitChoice
    from keel.executors.training.strategy import Placement

RECORD_FILE = "keel_training.json"


def training_record(placement: Placement, precision: str, jit: JitChoice, global_batch: int) -> dict:
    """The record as plain data."""
    return {
        "placement": placement.as_dict(),
        "precision": precision,
        "global_batch_size": global_batch,
        "jit": jit.as_dict(),
    }


def write_training_record(serving_model_dir: str, record: dict) -> Path:
    """Writes `record` into the SavedModel at `serving_model_dir`; returns the file's path."""
    path = Path(serving_model_dir) / "assets.extra" / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return path


def read_training_record(model_uri: str) -> dict | None:
    """The record inside a Trainer's Model artifact, or None if it has none."""
    from tfx.utils import path_utils

    path = Path(path_utils.serving_model_dir(model_uri)) / "assets.extra" / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def describe_record(record: dict) -> str:
    """The one-line form of a training record (what the run summary prints)."""
    if record.get("backend") == "jax":
        return _describe_jax(record)
    where = record["placement"]
    jit = record["jit"]
    processes = f" in {where['workers']} processes" if where.get("workers", 1) > 1 else ""
    line = (
        f"{where['strategy']} on {where['replicas']} {where['device'].upper()} replica"
        f"{'s' if where['replicas'] != 1 else ''}{processes}, {record['precision']}, "
        f"global batch {record['global_batch_size']}; XLA {'on' if jit['jit_compile'] else 'off'} "
        f"(jit_compile = {json.dumps(jit['setting'])}: {jit['reason']})"
    )
    probe = jit.get("probe", {})
    if probe:
        line += "; probe " + ", ".join(
            f"{mode} {p['fixed_s']:.2f}s + {p['step_ms']:.2f} ms/step" for mode, p in probe.items()
        )
        if jit.get("probe_cache"):
            how = "reused from" if jit["probe_reused"] else f"measured in {jit.get('probe_s', 0):.1f}s, cached in"
            line += f" ({how} {jit['probe_cache']})"
    if where.get("note"):
        line += f"; {where['note']}"
    return line


def _describe_jax(record: dict) -> str:
    devices = record["devices"]
    agreement = record.get("agreement", {})
    line = (
        f"JAX {record['jax_version']} on {len(devices)} {record['platform'].upper()} device"
        f"{'s' if len(devices) != 1 else ''}{', DataParallel' if len(devices) > 1 else ''}, "
        f"{record['precision']}, global batch {record['global_batch_size']}; every step compiled by jax.jit"
    )
    if agreement:
        line += (
            f"; the exported TensorFlow model agrees on {agreement['rows']} eval rows "
            f"(max abs diff {agreement['max_abs_diff']:.2g})"
        )
    return line
