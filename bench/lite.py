"""Benchmark: LiteRT variants of keel's models against their SavedModel, side by side in one process.

    .venv/bin/python bench/lite.py [--models digits penguin digits_images] [--workdir DIR] [--calls 1000]

For each model (the digits CNN on 64 numeric pixels; penguin, with two text categorical features
the mobile model takes as strings; the digits as PNG pictures, which it takes as uint8 pixels) runs its pipeline (a real `keel run`, cached when DIR/MODEL
already holds it; default a fresh temporary directory), then exports the pushed model in all four
variants with keel's exporter and
reports, per variant: size, accuracy on the eval split and its drop vs the SavedModel, argmax
agreement, max |diff| of the probabilities, and per-example latency (median and p99 of CALLS
one-example calls: the LiteRT interpreter with one thread against the SavedModel's `serving_raw`
signature, the dense-input one, called eagerly). The ratio is SavedModel median / variant median,
measured in the same run. Results go to bench/results/lite.md.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "digits": (REPO / "pipelines" / "digits.toml", "the digits CNN (64 numeric pixels)"),
    "penguin": (REPO / "pipelines" / "penguin.toml", "penguin (4 numeric features, `island` and `sex` as strings)"),
    "digits_images": (
        REPO / "pipelines" / "digits_images.toml",
        "the digits as 8x8 PNG pictures (models/image_cnn.py; the mobile model takes uint8 pixels)",
    ),
}
RESULTS = REPO / "bench" / "results" / "lite.md"
GOAL_RATIO = 30.0

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO / "src"))
from keel.core.spec import load_spec  # noqa: E402
from keel.export.exporter import LitePolicy, export_lite  # noqa: E402
from keel.export.report import table  # noqa: E402
from keel.export.standalone import latest_pushed  # noqa: E402

from results_file import write_results  # noqa: E402  (bench/, on the path when run as a script)


def measure(name: str, workdir: Path, calls: int) -> list[str] | None:
    """One model's section of the results: its pipeline run, the export of all four variants, the ratios."""
    spec_path, title = MODELS[name]
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "keel.cli", "run", str(spec_path), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        print(run.stdout[-2000:], run.stderr[-2000:], sep="\n")
        return None
    pipeline_seconds = time.monotonic() - started

    spec = load_spec(spec_path)
    saved_model, examples = latest_pushed(workdir)
    policy = LitePolicy(variants=("float32", "float16", "dynamic", "int8"), latency_calls=calls)
    if spec.export.lite is not None:
        policy = LitePolicy(**{**policy.__dict__, "max_accuracy_drop": spec.export.lite.max_accuracy_drop})
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        result = export_lite(saved_model, examples, Path(scratch) / "lite", policy, label=spec.data.label)
    export_seconds = time.monotonic() - started

    reference = result.reference
    by_name = {m.name: m for m in result.variants}
    ratios = [
        f"| {m.name} | {reference.latency_median_us / m.latency_median_us:.1f}x | "
        f"{m.size_bytes / by_name['float32'].size_bytes:.3f} |"
        for m in result.variants
    ]
    best = max(reference.latency_median_us / m.latency_median_us for m in result.variants)
    return [
        f"## {name}: {title} ({spec_path.relative_to(REPO)})",
        "",
        f"Pipeline run {pipeline_seconds:.0f}s, conversion and measurement of four variants {export_seconds:.0f}s. "
        f"Eval split: {result.summary['eval_rows']} rows.",
        "",
        table(reference, result.variants),
        "",
        "| variant | SavedModel / variant median latency | size / float32 size |",
        "|---|---|---|",
        *ratios,
        "",
        f"Best LiteRT speed-up over the SavedModel: {best:.1f}x (goal >= {GOAL_RATIO:.0f}x: "
        f"{'met' if best >= GOAL_RATIO else 'not met'}). Smallest of the four within max_accuracy_drop "
        f"({policy.max_accuracy_drop * 100:.1f} pp): {result.chosen.name}.",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS), help="models to measure")
    parser.add_argument("--workdir", default=None, help="a directory of workdirs, one per model (default: a fresh one)")
    parser.add_argument("--calls", type=int, default=1000, help="one-example calls timed per model")
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="keel-bench-lite-")).resolve()

    sections = []
    for name in args.models:
        section = measure(name, root / name, args.calls)
        if section is None:
            return 1
        sections += section
    lines = [
        "# LiteRT export: each variant next to the SavedModel",
        "",
        f"Command: `.venv/bin/python bench/lite.py {' '.join(sys.argv[1:])}`; host: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        f"Latency: one example per call, {args.calls} calls; LiteRT interpreter with 1 thread; the SavedModel row is "
        "its `serving_raw` signature called eagerly from Python with ready-made tensors (text as strings).",
        "",
        *sections,
    ]
    write_results(RESULTS, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
