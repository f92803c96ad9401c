"""Plain helpers shared by the tests: specs built from data, the real `keel` command, ML Metadata reads.

Importable as `helpers` because pyproject.toml puts tests/ on pytest's `pythonpath`. Fixtures live in
conftest.py and are used by name, never imported.
"""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import tomli_w
import tomllib

REPO = Path(__file__).resolve().parents[1]
TABULAR = REPO / "models" / "tabular.py"
PENGUIN_HPARAMS = {"hidden": [32, 16], "learning_rate": 0.01}

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def merged(base: dict, overrides: dict | None = None) -> dict:
    """A deep copy of `base` with `overrides` applied.

    Keys are dotted paths ("train.steps", "data.schema"); missing tables on the way are created. A value
    of None removes the key, so a test can drop a required one or rename it with two entries.
    """
    data = copy.deepcopy(base)
    for dotted, value in (overrides or {}).items():
        *tables, key = dotted.split(".")
        table = data
        for name in tables:
            table = table.setdefault(name, {})
        if value is None:
            table.pop(key, None)
        else:
            table[key] = copy.deepcopy(value)
    return data


def read_spec(path: Path) -> dict:
    """A spec file as data, its relative `model.module` made absolute (it is relative to the spec's folder)."""
    data = tomllib.loads(Path(path).read_text())
    module = data.get("model", {}).get("module")
    if module and not Path(module).is_absolute():
        data["model"]["module"] = str((Path(path).parent / module).resolve())
    return data


def write_spec(
    path: Path, base: Path | dict = REPO / "pipelines" / "penguin.toml", overrides: dict | None = None
) -> Path:
    """Writes `base` (a spec file, read with `read_spec`, or spec data) merged with `overrides` to `path`.

    Example: `write_spec(tmp_path / "taxi.toml", REPO / "pipelines" / "taxi.toml", {"train.steps": 400})`.
    """
    data = read_spec(base) if isinstance(base, Path) else base
    path = Path(path)
    path.write_text(tomli_w.dumps(merged(data, overrides)))
    return path


def penguin_data(
    steps: int = 200,
    source: str = "builtin:penguins",
    name: str = "penguin",
    threshold: float = 0.9,
    hparams: dict | None = None,
    eval_steps: int = 10,
    max_regression: float = 0.05,
) -> dict:
    """The penguin spec the tests train, as data.

    XLA is fixed off: the automatic choice times both modes on every Trainer run, which
    tests/test_training.py covers; here it would only add seconds.
    """
    return {
        "pipeline": {"name": name},
        "data": {"source": source, "label": "species"},
        "features": {
            "numeric": ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"],
            "categorical": ["island", "sex"],
        },
        "model": {"module": str(TABULAR), "hparams": PENGUIN_HPARAMS if hparams is None else hparams},
        "train": {"steps": steps, "eval_steps": eval_steps, "batch_size": 32, "jit_compile": False},
        "eval": {"threshold": threshold, "max_regression": max_regression},
    }


def penguin_mass_data(
    steps: int = 300, name: str = "penguin_mass", numeric_only: bool = False, threshold: float | None = None, **eval
) -> dict:
    """A regression on the penguins: body mass in grams from the other measurements (and, unless
    `numeric_only`, island, sex and species). Predicting the mean mass scores an RMSE of about 800 g."""
    data = {
        "pipeline": {"name": name},
        "data": {"source": "builtin:penguins", "label": "body_mass_g"},
        "features": {
            "numeric": ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"],
            "categorical": [] if numeric_only else ["island", "sex", "species"],
        },
        "model": {"module": str(TABULAR), "hparams": PENGUIN_HPARAMS},
        "train": {"steps": steps, "eval_steps": 5, "batch_size": 32, "jit_compile": False},
        "eval": {"metric": "root_mean_squared_error", "max_regression": 50.0, **eval},
    }
    if threshold is not None:
        data["eval"]["threshold"] = threshold
    return data


def penguin_spec(directory: Path, overrides: dict | None = None, **settings) -> Path:
    """Writes `penguin_data(**settings)` merged with `overrides` to DIRECTORY/NAME.toml and returns its path."""
    data = penguin_data(**settings)
    return write_spec(Path(directory) / f"{data['pipeline']['name']}.toml", data, overrides)


def keel(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Runs the real `keel` command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "keel.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def eval_metric(stdout: str, name: str) -> float:
    """The value of metric `name` on the run summary's `eval:` line."""
    line = next(l for l in stdout.splitlines() if l.strip().startswith("eval:"))
    return float(re.search(rf"\b{name} (-?[0-9.]+(?:e[-+]?[0-9]+)?)", line).group(1))


def pushed_versions(workdir: Path, name: str = "penguin") -> list[str]:
    """The version directories the Pusher wrote, oldest first."""
    return sorted(str(p) for p in (workdir / "serving" / name).glob("*"))


def node_states(workdir: Path) -> dict[str, str]:
    """Node id -> ML Metadata execution state of the latest pipeline run in `workdir`."""
    from keel.mlmd import store as metadata

    store = metadata.open_store(workdir)
    run = metadata.latest_run_context(store)
    return {n.node_id: n.state for n in metadata.run_executions(store, run)}


def accelerator_present() -> str | None:
    """What accelerator this machine has ("TPU" or "GPU"), by keel's own checks; None on a CPU-only host."""
    from keel.executors.training.strategy import local_tpu_devices

    if local_tpu_devices():
        return "TPU"
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else None
