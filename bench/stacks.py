"""Benchmark: the same penguin pipeline on both of keel's stacks, TFX 1.16 and TFX 1.21.

    .venv/bin/python bench/stacks.py [--rounds 2]      (as root: the other stack runs in a chroot)

Each round runs, on this host's stack (.venv) and on the other one (tools/other-stack.sh: a Debian
root of the other glibc, with its own .venv), alternating which goes first: `keel run` of
pipelines/penguin.toml cold in a fresh workdir, again after changing only the learning rate, and
once more fully cached. Wall and CPU time (user + system, every thread of the `keel run` process)
per component come from each run's ML Metadata and keel's own record of it. Results are added to
bench/results/pipeline.md as its two-stack section.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline as bench  # noqa: E402  bench/pipeline.py: the timed runs and their ML Metadata

REPO = bench.REPO
RESULTS = bench.RESULTS
RUNS = ["keel cold", "keel re-run", "keel cached"]
MARK = "bench-json: "
SECTION = "## Both stacks"


def stack_name() -> str:
    from importlib.metadata import version

    return (
        f"TFX {version('tfx')}, TF {version('tensorflow')}, Keras {version('keras')}, "
        f"Python {platform.python_version()}"
    )


def measure_here(round_: int) -> list[dict]:
    """The three keel runs on this interpreter's stack, as plain dicts."""
    root = Path(tempfile.mkdtemp(prefix=f"keel-bench-stacks-r{round_}-"))
    try:
        workdir = root / "keel"
        spec = bench.write_spec(root, bench.load_spec(bench.SPEC).model.hparams["learning_rate"], jit_compile=False)
        command = [sys.executable, "-m", "keel.cli", "run", str(spec), "--workdir", str(workdir)]
        found = [bench._read_metadata(bench._timed("keel cold", round_, command, root / "cold.log"), workdir)]
        bench.write_spec(root, bench.CHANGED_LEARNING_RATE, jit_compile=False)
        found.append(bench._read_metadata(bench._timed("keel re-run", round_, command, root / "rerun.log"), workdir))
        found.append(bench._read_metadata(bench._timed("keel cached", round_, command, root / "cached.log"), workdir))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    stack = stack_name()
    return [
        {
            "stack": stack,
            "name": m.name,
            "round": m.round,
            "wall": m.wall,
            "cpu": m.cpu,
            "load": m.load,
            "accuracy": m.accuracy,
            "components": {c.node_id: [c.status, c.seconds, c.cpu_seconds] for c in m.components},
        }
        for m in found
    ]


def measure_other(round_: int) -> list[dict]:
    """The same runs on the other stack, through tools/other-stack.sh."""
    inner = f".venv/bin/python bench/stacks.py --here --round {round_}"
    result = subprocess.run(
        ["bash", str(REPO / "tools" / "other-stack.sh"), f"make -s install && {inner}"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    for line in result.stdout.splitlines():
        if not line.startswith(MARK):
            print(f"  [other stack] {line}", flush=True)
    if result.returncode != 0:
        raise bench.BenchError(f"the other stack's runs failed (exit {result.returncode}): {result.stderr[-2000:]}")
    return [json.loads(line[len(MARK) :]) for line in result.stdout.splitlines() if line.startswith(MARK)]


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _component(rows: list[dict], node: str, index: int) -> float | None:
    values = [
        r["components"][node][index]
        for r in rows
        if node in r["components"] and r["components"][node][index] is not None
    ]
    return statistics.median(values) if values else None


def render(rows: list[dict], rounds: int, started: str) -> str:
    stacks = list(dict.fromkeys(r["stack"] for r in sorted(rows, key=lambda r: r["stack"].split(",")[0])))
    old, new = stacks[0], stacks[-1]
    loads = [x for r in rows for x in r["load"]]
    lines = [
        SECTION,
        "",
        f"Measured {started} with `.venv/bin/python bench/stacks.py --rounds {rounds}` ({rounds} rounds, "
        f"medians), the two stacks alternating first, on this {os.cpu_count()}-core machine; the 1-minute "
        f"load average ranged {min(loads):.1f}-{max(loads):.1f}. The same spec (pipelines/penguin.toml, "
        "`jit_compile = false`), data and model code; the other stack ran in a debootstrap root "
        "(tools/other-stack.sh).",
        "",
        f"- A: {old}",
        f"- B: {new}",
        "",
        "| run | A wall | B wall | B / A | A CPU | B CPU | B / A | accuracy A, B |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in RUNS:
        a = [r for r in rows if r["stack"] == old and r["name"] == name]
        b = [r for r in rows if r["stack"] == new and r["name"] == name]
        acc = ", ".join(f"{statistics.median(r['accuracy'] for r in side):.3f}" for side in (a, b))
        lines.append(
            f"| {name} | {_median(a, 'wall'):.1f}s | {_median(b, 'wall'):.1f}s | "
            f"{_median(b, 'wall') / _median(a, 'wall'):.2f} | {_median(a, 'cpu'):.1f}s | "
            f"{_median(b, 'cpu'):.1f}s | {_median(b, 'cpu') / _median(a, 'cpu'):.2f} | {acc} |"
        )
    cold = {s: [r for r in rows if r["stack"] == s and r["name"] == "keel cold"] for s in (old, new)}
    nodes = list(dict.fromkeys(n for s in (old, new) for r in cold[s] for n in r["components"]))
    lines += [
        "",
        "Per component of the cold run (median seconds; wall from ML Metadata, CPU from keel's record "
        "of the process while the component ran):",
        "",
        "| component | A wall | B wall | A CPU | B CPU |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def cell(value):
        return "-" if value is None else f"{value:.1f}s"

    for node in nodes:
        lines.append(
            f"| {node} | {cell(_component(cold[old], node, 1))} | {cell(_component(cold[new], node, 1))} | "
            f"{cell(_component(cold[old], node, 2))} | {cell(_component(cold[new], node, 2))} |"
        )
    outside = [_median(cold[s], "wall") - sum(_component(cold[s], n, 1) or 0.0 for n in nodes) for s in (old, new)]
    lines.append(
        f"| outside components (start-up, imports, TFX's launcher) | {outside[0]:.1f}s | {outside[1]:.1f}s | - | - |"
    )
    return "\n".join(lines) + "\n"


def write_section(section: str, path: Path) -> None:
    """Replaces (or appends) the two-stack section of the results file."""
    text = path.read_text() if path.exists() else ""
    text = re.sub(rf"\n{re.escape(SECTION)}\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(f"{text}\n\n{section}" if text else section)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the penguin pipeline on TFX 1.16 and TFX 1.21")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--here", action="store_true", help="only this stack's runs, as JSON lines (internal)")
    parser.add_argument("--round", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.here:
            for row in measure_here(args.round):
                print(MARK + json.dumps(row), flush=True)
            return 0
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        rows = []
        for r in range(1, args.rounds + 1):
            print(f"round {r}/{args.rounds}", flush=True)
            order = [measure_here, measure_other] if r % 2 else [measure_other, measure_here]
            for measure in order:
                rows += measure(r)
    except bench.BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    section = render(rows, args.rounds, started)
    write_section(section, args.out)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
