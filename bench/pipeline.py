"""Benchmark: keel's penguin pipeline against the same pipeline written directly in TFX 1.16.

    .venv/bin/python bench/pipeline.py [--rounds 2]      (or: make bench)

Each round times, as subprocess wall times (interpreter start-up and imports included), in fresh
temporary workdirs:

- raw TFX cold: bench/raw_tfx/penguin_pipeline.py, the same components, data, preprocessing and
  model as pipelines/penguin.toml, with user code passed as `module_file=`;
- raw TFX re-run: the same script with a new learning rate (a Trainer custom_config change);
- keel cold: `keel run` of pipelines/penguin.toml;
- keel re-run: `keel run` after changing only `model.hparams.learning_rate` in the spec;
- keel re-run, no XLA probe: then `train.jit_compile = false` instead of "auto", which skips the
  Trainer's timing of graph mode against XLA (present when the spec has that key);
- keel cached: the same spec once more, every component cached (the floor of any `keel run`);
- keel re-run, watch mode: `keel run --watch` started on that workdir (its first run all cached), then
  the learning rate changed again in the spec: timed from the spec's write to the end of the re-run
  the watch reports, which includes the watch noticing the edit (it polls every second);
- imports: a bare interpreter importing tfx, TFT and TFMA, the floor under every run.

Rounds alternate which pipeline goes first, medians are reported, and per-component times are read
from each run's ML Metadata executions. Results go to bench/results/pipeline.md.
"""

import argparse
import dataclasses
import importlib.util
import io
import logging
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "pipelines" / "penguin.toml"
RAW_SCRIPT = REPO / "bench" / "raw_tfx" / "penguin_pipeline.py"
RESULTS = REPO / "bench" / "results" / "pipeline.md"
CHANGED_LEARNING_RATE = 0.02
IMPORTS = "import tfx.v1, tensorflow_transform, tensorflow_model_analysis"
WATCH_LEARNING_RATE = 0.03  # the watch-mode edit: a value no earlier run of the round used, so the Trainer runs
WATCH = "keel re-run, watch mode"
GOALS = {"keel cold / raw TFX cold": 1.0, "keel re-run / keel cold": 0.35, f"{WATCH} / keel cold": 0.15}

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the settings check imports TensorFlow here too
warnings.filterwarnings("ignore", category=FutureWarning)
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TFMA's deprecation notices when results are read
sys.path.insert(0, str(REPO / "src"))
from keel.core.spec import load_spec, to_toml  # noqa: E402
from keel.data.datasets import materialise  # noqa: E402
from keel.mlmd import store as metadata  # noqa: E402
from keel.runners.summary import ComponentResult, collect_summary  # noqa: E402


class BenchError(Exception):
    """A measured run failed; the message names it and its log."""


@dataclasses.dataclass
class Measurement:
    name: str
    round: int
    wall: float
    cpu: float  # user + system seconds of the subprocess and everything it waited for
    load: tuple[float, float]  # 1-minute load average before and after
    components: list[ComponentResult] = dataclasses.field(default_factory=list)
    accuracy: float | None = None
    blessed: bool | None = None
    pushed: bool = False


def _timed(name: str, round_: int, command: list[str], log: Path) -> Measurement:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO / "src")}
    before_load, before = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise BenchError(f"{name} (round {round_}) exited {code}; log: {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  {name:<16} {wall:7.1f}s wall {cpu:7.1f}s cpu", flush=True)
    return Measurement(name, round_, wall, cpu, (before_load, os.getloadavg()[0]))


def _read_metadata(m: Measurement, workdir: Path) -> Measurement:
    store = metadata.open_store(workdir)
    run = metadata.latest_run_context(store)
    node_ids = [n.node_id for n in metadata.run_executions(store, run)]
    summary = collect_summary(store, run, "penguin", node_ids, workdir, m.wall, workdir / "run.log")
    m.components = summary.components
    m.accuracy = summary.metrics.get("sparse_categorical_accuracy")
    m.blessed, m.pushed = summary.blessed, summary.pushed_to is not None
    return m


def _raw_settings():
    spec = importlib.util.spec_from_file_location("raw_penguin_pipeline", RAW_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_same_settings() -> None:
    """Fails when pipelines/penguin.toml and the raw TFX pipeline no longer describe the same run."""
    spec, raw = load_spec(SPEC), _raw_settings()
    pairs = {
        "train.steps": (spec.train.steps, raw.STEPS),
        "train.eval_steps": (spec.train.eval_steps, raw.EVAL_STEPS),
        "train.batch_size": (spec.train.batch_size, raw.BATCH_SIZE),
        "train.seed": (spec.train.seed, raw.SEED),
        "model.hparams.hidden": (spec.model.hparams.get("hidden"), raw.HIDDEN),
        "model.hparams.learning_rate": (spec.model.hparams.get("learning_rate"), raw.LEARNING_RATE),
        "data.eval_percent": (spec.data.eval_percent, raw.EVAL_PERCENT),
        "eval.threshold": (spec.eval.threshold, raw.THRESHOLD),
        "eval.max_regression": (spec.eval.max_regression, raw.MAX_REGRESSION),
    }
    differ = [f"{k}: spec {a!r}, raw TFX {b!r}" for k, (a, b) in pairs.items() if a != b]
    if differ:
        raise BenchError(f"{SPEC.name} and {RAW_SCRIPT.name} disagree: {'; '.join(differ)}")


def write_spec(directory: Path, learning_rate: float, jit_compile: bool | None = None) -> Path:
    """pipelines/penguin.toml with an absolute model path, the given learning rate and XLA setting."""
    spec = load_spec(SPEC)
    resolved = spec.resolved()
    resolved["model"]["module"] = str(spec.resolve(spec.model.module))
    resolved["model"]["hparams"]["learning_rate"] = learning_rate
    if jit_compile is not None:
        resolved["train"]["jit_compile"] = jit_compile
    path = directory / "penguin.toml"
    path.write_text(to_toml(resolved))
    return path


def run_raw(root: Path, round_: int) -> list[Measurement]:
    workdir = root / "raw"
    data = workdir / "data" / "penguins"
    materialise("penguins", data)  # the CSV keel materialises for builtin:penguins
    command = [sys.executable, str(RAW_SCRIPT), "--data", str(data), "--root", str(workdir)]
    cold = _read_metadata(_timed("raw TFX cold", round_, command, root / "raw-cold.log"), workdir)
    rerun = _timed(
        "raw TFX re-run", round_, [*command, "--learning-rate", str(CHANGED_LEARNING_RATE)], root / "raw-rerun.log"
    )
    return [cold, _read_metadata(rerun, workdir)]


def run_keel(root: Path, round_: int) -> list[Measurement]:
    workdir = root / "keel"
    spec = write_spec(root, load_spec(SPEC).model.hparams["learning_rate"])
    command = [sys.executable, "-m", "keel.cli", "run", str(spec), "--workdir", str(workdir)]
    cold = _read_metadata(_timed("keel cold", round_, command, root / "keel-cold.log"), workdir)
    write_spec(root, CHANGED_LEARNING_RATE)
    found = [cold, _read_metadata(_timed("keel re-run", round_, command, root / "keel-rerun.log"), workdir)]
    if "jit_compile" in load_spec(SPEC).resolved()["train"]:
        write_spec(root, CHANGED_LEARNING_RATE, jit_compile=False)
        found.append(_read_metadata(_timed(NO_PROBE, round_, command, root / "keel-rerun-noprobe.log"), workdir))
    found.append(_read_metadata(_timed("keel cached", round_, command, root / "keel-cached.log"), workdir))
    found.append(run_watch(root, round_))
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its waited-for children, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime


def _until_waiting(watch: subprocess.Popen, log: io.TextIOBase, name: str) -> str:
    """Reads the watch's output into `log` until it says it waits for changes; returns its last timing line."""
    timing = ""
    for line in watch.stdout:
        log.write(line)
        log.flush()
        if line.startswith("watch: ") and re.search(r"; \d+\.\ds$", line.rstrip()):
            timing = line.strip()
        if line.startswith("watch: waiting for changes"):
            return timing
    raise BenchError(f"{name}: `keel run --watch` exited {watch.wait()} before re-running; log: {log.name}")


def run_watch(root: Path, round_: int) -> Measurement:
    """keel's watch mode on the workdir `run_keel` left: a learning-rate edit, timed from the spec's write to
    the end of the re-run, in the one warm process that had already run the pipeline (all cached)."""
    workdir = root / "keel"
    spec = root / "penguin.toml"  # as the cached run left it
    command = [sys.executable, "-m", "keel.cli", "run", str(spec), "--watch", "--workdir", str(workdir)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO / "src")}
    log_path = root / "keel-watch.log"
    with log_path.open("w") as log:
        watch = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO
        )
        try:
            _until_waiting(watch, log, WATCH)
            time.sleep(2)  # past the watch's first poll, so the edit is seen as one
            before_load, before_cpu = os.getloadavg()[0], _cpu_seconds(watch.pid)
            started = time.perf_counter()
            write_spec(root, WATCH_LEARNING_RATE)
            timing = _until_waiting(watch, log, WATCH)
            wall = time.perf_counter() - started
            cpu = _cpu_seconds(watch.pid) - before_cpu
        finally:
            watch.send_signal(signal.SIGINT)
            watch.wait(timeout=60)
    print(f"  {WATCH:<16} {wall:7.1f}s wall {cpu:7.1f}s cpu ({timing})", flush=True)
    return _read_metadata(Measurement(WATCH, round_, wall, cpu, (before_load, os.getloadavg()[0])), workdir)


def run_imports(root: Path, round_: int) -> Measurement:
    return _timed("imports", round_, [sys.executable, "-c", IMPORTS], root / "imports.log")


# ---- report --------------------------------------------------------------------------------------

NO_PROBE = "keel re-run, no XLA probe"
ORDER = ["raw TFX cold", "keel cold", "raw TFX re-run", "keel re-run", NO_PROBE, WATCH, "keel cached", "imports"]
PIPELINE_RUNS = ORDER[:6]  # the runs that execute components worth a per-component column


def _median(ms: list[Measurement], name: str, field: str = "wall") -> float:
    return statistics.median(getattr(m, field) for m in ms if m.name == name)


def _component_medians(ms: list[Measurement], name: str) -> dict[str, tuple[str, float]]:
    """node id -> (statuses seen, median seconds) over the rounds of measurement `name`."""
    by_node: dict[str, list[ComponentResult]] = {}
    for m in ms:
        if m.name == name:
            for c in m.components:
                by_node.setdefault(c.node_id, []).append(c)
    return {
        node: ("/".join(sorted({c.status for c in cs})), statistics.median(c.seconds or 0.0 for c in cs))
        for node, cs in by_node.items()
    }


def _outside(ms: list[Measurement], name: str) -> float:
    """Median wall time not spent in any component's execution."""
    return _median(ms, name) - sum(s for _, s in _component_medians(ms, name).values())


def ratios(ms: list[Measurement], field: str = "wall") -> dict[str, float]:
    def med(name):
        return _median(ms, name, field)

    found = {
        "keel cold / raw TFX cold": med("keel cold") / med("raw TFX cold"),
        "keel re-run / keel cold": med("keel re-run") / med("keel cold"),
        "raw TFX re-run / raw TFX cold": med("raw TFX re-run") / med("raw TFX cold"),
        "keel re-run / raw TFX re-run": med("keel re-run") / med("raw TFX re-run"),
    }
    if any(m.name == NO_PROBE for m in ms):
        found[f"{NO_PROBE} / keel cold"] = med(NO_PROBE) / med("keel cold")
    if any(m.name == WATCH for m in ms):
        found[f"{WATCH} / keel cold"] = med(WATCH) / med("keel cold")
        found[f"{WATCH} / keel re-run"] = med(WATCH) / med("keel re-run")
    found["keel cached / keel cold"] = med("keel cached") / med("keel cold")
    return found


def _dominates(ms: list[Measurement], name: str) -> str:
    wall = _median(ms, name)
    components = _component_medians(ms, name)
    ran = sorted(((s, n) for n, (_, s) in components.items()), reverse=True)
    outside = _outside(ms, name)
    parts = [f"{n} {s:.1f}s ({100 * s / wall:.0f}%)" for s, n in ran[:3]]
    parts.append(f"outside components {outside:.1f}s ({100 * outside / wall:.0f}%)")
    return f"{name} ({wall:.1f}s): " + ", ".join(parts)


def _component(ms: list[Measurement], name: str, node: str) -> float:
    return _component_medians(ms, name).get(node, ("-", 0.0))[1]


def reading(ms: list[Measurement]) -> list[str]:
    """The figures behind each goal, in sentences."""
    cold, raw = _median(ms, "keel cold"), _median(ms, "raw TFX cold")
    keel_nodes, raw_nodes = _component_medians(ms, "keel cold"), _component_medians(ms, "raw TFX cold")
    gaps = sorted(((keel_nodes[n][1] - raw_nodes.get(n, ("-", 0.0))[1], n) for n in keel_nodes), reverse=True)
    shown = ", ".join(f"{n} {g:+.1f}s" for g, n in gaps[:2] + gaps[-1:])
    lines = [
        f"- Cold: keel {cold:.1f}s vs raw TFX {raw:.1f}s ({cold - raw:+.1f}s); largest per-component "
        f"differences (keel - raw): {shown}; outside components "
        f"{_outside(ms, 'keel cold') - _outside(ms, 'raw TFX cold'):+.1f}s."
    ]
    cached = _median(ms, "keel cached")
    must_run = sum(_component(ms, "keel re-run", n) for n in ("Trainer", "Evaluator", "Pusher"))
    lines.append(
        f"- Re-run: a learning-rate change must re-run Trainer, Evaluator and Pusher ({must_run:.1f}s "
        f"here), on top of what a fully cached `keel run` costs ({cached:.1f}s: start-up, imports, "
        f"pipeline construction, cache look-ups); together {must_run + cached:.1f}s = "
        f"{(must_run + cached) / cold:.2f} of the cold run. Raw TFX re-runs the same components: "
        f"{_median(ms, 'raw TFX re-run') / raw:.2f} of its cold run."
    )
    if any(m.name == NO_PROBE for m in ms):
        probe = _component(ms, "keel re-run", "Trainer") - _component(ms, NO_PROBE, "Trainer")
        lines.append(
            f"- The Trainer's XLA probe (`train.jit_compile = \"auto\"`) costs {probe:.1f}s of the re-run's "
            f"Trainer ({_component(ms, 'keel re-run', 'Trainer'):.1f}s with it, "
            f"{_component(ms, NO_PROBE, 'Trainer'):.1f}s without); with `jit_compile = false` the "
            f"re-run is {_median(ms, NO_PROBE) / cold:.2f} of the cold run."
        )
    if any(m.name == WATCH for m in ms):
        watch = _median(ms, WATCH)
        ran = sum(_component(ms, WATCH, n) for n in ("Trainer", "Evaluator", "Pusher"))
        lines.append(
            f"- Watch mode: the same kind of edit re-runs in {watch:.1f}s = {watch / cold:.2f} of the cold run "
            f"({_median(ms, 'keel re-run') - watch:.1f}s less than the CLI re-run): imports and start-up are paid "
            f"once. Trainer, Evaluator and Pusher take {ran:.1f}s of it; the remaining {watch - ran:.1f}s is the "
            "watch noticing the edit (a poll each second and a 0.3s settle), pipeline construction, TFX's launcher "
            "and ML Metadata's cache look-ups for the cached components."
        )
    lines.append(
        f"- A bare interpreter importing tfx, TFT and TFMA takes {_median(ms, 'imports'):.1f}s, "
        f"{_median(ms, 'imports') / cold:.2f} of the cold run, before any component runs."
    )
    return lines


def render(ms: list[Measurement], rounds: int, command: str, started: str) -> str:
    lines = [
        "# Pipeline benchmark: keel vs raw TFX 1.16 (penguin)",
        "",
        f"Measured {started} with `{command}` ({rounds} rounds, medians).",
        f"Machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}.",
        "",
    ]
    loads = [x for m in ms for x in m.load]
    load = (
        f"the 1-minute load average on its {os.cpu_count()} cores ranged {min(loads):.1f}-{max(loads):.1f} "
        "during the measurements"
    )
    if max(loads) > (os.cpu_count() or 1):
        load = f"The machine was shared with other work while this ran, so wall times are noisy: {load}."
    else:
        load = load[0].upper() + load[1:] + "."
    lines += [
        f"{load} CPU seconds (user + system of each subprocess and its children) are given beside the "
        "wall times; they are less sensitive to other load.",
        "",
    ]
    lines += [
        "Every time is a subprocess wall time, interpreter start-up and imports included, in a fresh "
        "temporary workdir. The re-runs change only the learning rate (keel: "
        f"`model.hparams.learning_rate` {load_spec(SPEC).model.hparams['learning_rate']} -> "
        f"{CHANGED_LEARNING_RATE} in the spec; raw TFX: the Trainer's custom_config).",
        "",
    ]
    lines += [
        "| run | median wall | median CPU | "
        + " | ".join(f"round {r + 1}" for r in range(rounds))
        + " | accuracy | blessed, pushed |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in range(rounds)) + " | ---: | --- |",
    ]
    names = [n for n in ORDER if any(m.name == n for m in ms)]
    columns = [n for n in PIPELINE_RUNS if n in names]
    for name in names:
        runs = sorted((m for m in ms if m.name == name), key=lambda m: m.round)
        acc = ", ".join(f"{m.accuracy:.3f}" for m in runs if m.accuracy is not None) or "-"
        flags = (
            ", ".join(
                f"{'yes' if m.blessed else 'no'}/{'yes' if m.pushed else 'no'}" for m in runs if m.blessed is not None
            )
            or "-"
        )
        lines.append(
            f"| {name} | {_median(ms, name):.1f}s | {_median(ms, name, 'cpu'):.1f}s | "
            + " | ".join(f"{m.wall:.1f}s" for m in runs)
            + f" | {acc} | {flags} |"
        )
    wall_ratios, cpu_ratios = ratios(ms), ratios(ms, "cpu")
    lines += ["", "| ratio | wall | CPU | goal |", "| --- | ---: | ---: | --- |"]
    for key, value in wall_ratios.items():
        goal = GOALS.get(key)
        verdict = f"<= {goal:.2f}: {'met' if value <= goal else 'not met'}" if goal else "-"
        lines.append(f"| {key} | {value:.2f} | {cpu_ratios[key]:.2f} | {verdict} |")

    nodes = []
    for name in columns:
        nodes += [n for n in _component_medians(ms, name) if n not in nodes]
    lines += [
        "",
        "Per component (median seconds from ML Metadata executions, and their status):",
        "",
        "| component | " + " | ".join(columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    tables = {name: _component_medians(ms, name) for name in columns}
    for node in nodes:
        cells = []
        for name in columns:
            status, seconds = tables[name].get(node, ("-", 0.0))
            cells.append("-" if status == "-" else f"{seconds:.1f}s {status}")
        lines.append(f"| {node} | " + " | ".join(cells) + " |")
    lines.append("| outside components |" + "".join(f" {_outside(ms, name):.1f}s |" for name in columns))
    lines += [
        "",
        "What dominates (median wall; the three largest components and the time outside them: "
        "interpreter start-up, imports, pipeline construction, TFX's launcher and ML Metadata):",
        "",
    ]
    lines += [f"- {_dominates(ms, name)}" for name in [*columns, "keel cached"]]
    lines += [f'- a bare `python -c "{IMPORTS}"`: {_median(ms, "imports"):.1f}s', ""]
    lines += ["Reading:", "", *reading(ms), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="keel vs raw TFX on the penguin pipeline")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all measurements (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (default bench/results/pipeline.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workdirs")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    measurements: list[Measurement] = []
    try:
        check_same_settings()
        for r in range(1, args.rounds + 1):
            root = Path(tempfile.mkdtemp(prefix=f"keel-bench-pipeline-r{r}-"))
            print(f"round {r}/{args.rounds} in {root}", flush=True)
            order = [run_raw, run_keel] if r % 2 else [run_keel, run_raw]
            for run in order:
                measurements += run(root, r)
            measurements.append(run_imports(root, r))
            if not args.keep:
                shutil.rmtree(root)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    command = " ".join([".venv/bin/python bench/pipeline.py", *(argv if argv is not None else sys.argv[1:])])
    report = render(measurements, args.rounds, command, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = args.out.read_text() if args.out.exists() else ""
    both = previous.find("\n## Both stacks\n")  # bench/stacks.py's section, measured separately: kept
    tmp = args.out.with_suffix(".md.tmp")
    tmp.write_text(report + (previous[both:] if both >= 0 else ""))
    tmp.replace(args.out)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
