"""Scale benchmark: ExampleGen + StatisticsGen + SchemaGen + Transform on taxi-shaped data.

(ExampleValidator and DataGate run too, as Transform depends on them; they take well under a second.)

Data: the real Chicago taxi CSV (keel's builtin:taxi) resampled with replacement to N rows, with
Gaussian noise (5% of each column's standard deviation) on the continuous columns, so rows are not
copies. For each size, the same TFX data components run with Beam's DirectRunner in memory and in
multi_processing mode with 2 workers, each in its own subprocess; wall time and the peak resident
memory of the whole process tree (sampled every 0.2 s) are recorded.

    .venv/bin/python bench/scale.py                      # 10k, 100k and 1M rows
    .venv/bin/python bench/scale.py --sizes 10000 100000  # a quicker subset

Writes bench/results/scale.md.
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from results_file import write_results

ROOT = Path(__file__).resolve().parent.parent
CONTINUOUS = [
    "fare",
    "trip_miles",
    "trip_seconds",
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
]
MODES = {
    "in_memory": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
}


def make_data(rows: int, target: Path, seed: int = 0) -> None:
    """Writes `rows` taxi-shaped rows resampled from the real taxi CSV, with noise on continuous columns."""
    from keel.data import datasets

    source = datasets.materialise("taxi", target.parent / "taxi-source")
    with open(source["file"], newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        base = list(reader)
    index = {c: header.index(c) for c in CONTINUOUS}
    spread = {}
    for column, i in index.items():
        values = [float(r[i]) for r in base if r[i]]
        mean = sum(values) / len(values)
        spread[column] = 0.05 * (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    rng = random.Random(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for _ in range(rows):
            row = list(rng.choice(base))
            for column, i in index.items():
                if row[i]:
                    row[i] = f"{float(row[i]) + rng.gauss(0.0, spread[column]):.6f}"
            writer.writerow(row)


RUNNER = r"""
import json, sys, time
from pathlib import Path
from tfx import v1 as tfx
from tfx.orchestration.pipeline import RunOptions
from keel.core.spec import load_spec
from keel.data.sources import resolve_source
from keel.runners.local import local_pipeline

spec_path, workdir, mode_args = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
spec = load_spec(spec_path)
pipeline = local_pipeline(spec, resolve_source(spec), workdir, beam_args=mode_args)
pipeline.enable_cache = False
started = time.monotonic()
# A partial run: Transform and what it depends on (ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, DataGate).
tfx.orchestration.LocalDagRunner().run(pipeline, run_options=RunOptions(to_nodes=["Transform"]))
print(json.dumps({"seconds": time.monotonic() - started}))
"""


def run_once(spec: Path, workdir: Path, mode: str) -> dict:
    """Runs the data components in a subprocess; returns wall seconds and the tree's peak RSS."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(spec), str(workdir), json.dumps(MODES[mode])],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = process.stdout.read()
    if process.returncode != 0:
        raise RuntimeError(f"{mode} run failed (exit {process.returncode})")
    return {
        "wall": time.monotonic() - started,
        "pipeline": json.loads(out.strip().splitlines()[-1])["seconds"],
        "peak_mib": peak / 2**20,
    }


def write_spec(directory: Path, data: Path) -> Path:
    text = (ROOT / "pipelines" / "taxi.toml").read_text()
    text = text.replace('source = "builtin:taxi"', f'source = "{data}"')
    text = text.replace("../models/tabular.py", str(ROOT / "models" / "tabular.py"))
    path = directory / "taxi-scale.toml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="keel-bench-scale-") as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            data = tmp / f"data-{size}" / "data.csv"
            make_data(size, data)
            spec = write_spec(data.parent.parent, data)
            for mode in MODES:
                result = run_once(spec, tmp / f"work-{size}-{mode}", mode)
                rows_out.append((size, mode, result))
                print(
                    f"{size:>9} rows  {mode:<16} {result['pipeline']:7.1f}s  peak {result['peak_mib']:7.0f} MiB",
                    flush=True,
                )
    lines = [
        "# Scale: ExampleGen + StatisticsGen + SchemaGen + Transform on taxi-shaped data",
        "",
        f"Measured by `.venv/bin/python bench/scale.py --sizes {' '.join(map(str, args.sizes))}` on "
        f"{os.cpu_count()} cores. Time is the LocalDagRunner run (imports excluded); memory is the peak RSS",
        "summed over the process tree (Beam workers included). The marginal cost is the extra time per",
        "100k rows over the next smaller size of the same mode, which leaves out the fixed start-up cost.",
        "",
        "| rows | mode | seconds | marginal s per 100k rows | peak MiB |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for size, mode, r in rows_out:
        smaller = [(s, x) for s, m, x in rows_out if m == mode and s < size]
        marginal = (
            ""
            if not smaller
            else f"{100_000 * (r['pipeline'] - smaller[-1][1]['pipeline']) / (size - smaller[-1][0]):.1f}"
        )
        lines.append(f"| {size:,} | {mode} | {r['pipeline']:.1f} | {marginal} | {r['peak_mib']:.0f} |")
    write_results(ROOT / "bench" / "results" / "scale.md", lines)


if __name__ == "__main__":
    main()
