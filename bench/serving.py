"""Benchmark: `keel serve` with and without micro-batching against a naive server, on loopback.

    .venv/bin/python bench/serving.py [--workdir DIR] [--requests 10000] [--clients 64] [--rounds 5]

Needs a penguin workdir with a pushed model: DIR, or a fresh temporary one that `keel run
pipelines/penguin.toml` fills first. The three servers run at once, each in its own subprocess on
127.0.0.1, and get the same load: CLIENTS concurrent keep-alive connections sending REQUESTS
row-form predict requests of one eval row each (after a warm-up of 2 requests per client), from
this process, in ROUNDS phases that take turns between the servers, so a change in the machine's
other load during the run falls on all three alike. Servers:

- keel serve (batching): the defaults, micro-batches of up to 64 rows, 2 ms wait;
- keel serve (no batching): `--max-batch-size 1`, one model call per request;
- naive: a Starlette app on uvicorn that parses the body with the same code and calls the
  SavedModel's `serving_raw` once per request, inside its handler;
- HTTP floor: the naive app answering without calling the model, the ceiling of this HTTP stack
  on this machine (no server built on it can be faster).

Request logging stays on for keel serve (its default). Reports throughput, p50 and p99 latency and
errors per server, and the throughput ratio to the naive server, measured in the same run; the
load generator shares this machine's cores with the server. Results go to bench/results/serving.md.
"""

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import write_results

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "serving.md"
SPEC = REPO / "pipelines" / "penguin.toml"
GOAL_RATIO = 3.0
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO / "src"))


def naive_server(model_dir: str, call_model: bool = True) -> None:
    """The baseline: one SavedModel call per request, made in the request handler.

    Without `call_model` it parses the same way and answers the first answer again: the floor of
    this HTTP stack, what no server on it can beat.
    """
    import tensorflow as tf
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from keel.serving import codec

    signature = tf.saved_model.load(model_dir).signatures["serving_raw"]
    inputs = dict(signature.structured_input_signature[1])

    answered = {}

    async def predict(request):
        form = codec.parse_body(json.loads(await request.body()))
        arrays = codec.to_arrays(form, inputs)
        if call_model or not answered:
            outputs = signature(**{name: tf.constant(values) for name, values in arrays.items()})
            answered["outputs"] = {k: v.numpy() for k, v in outputs.items()}
        return JSONResponse(codec.render(answered["outputs"], form.columnar))

    app = Starlette(routes=[Route("/v1/models/penguin:predict", predict, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"serving naive at http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def start(command: list[str], env: dict, out: Path) -> tuple[subprocess.Popen, str]:
    handle = open(out, "w")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready = [line for line in out.read_text().splitlines() if line.startswith("serving ")]
        if ready:
            return process, ready[0].split(" at ", 1)[1].split()[0]
        if process.poll() is not None:
            raise SystemExit(f"server exited: {out.read_text()[-2000:]}")
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start")


async def one_client(
    host: str, port: int, bodies: list[bytes], counter: list[int], limit: int, latencies: list[float], errors: list[str]
) -> None:
    """One keep-alive HTTP/1.1 connection sending requests until `limit` have been sent in all."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while counter[0] < limit:
            body = bodies[counter[0] % len(bodies)]
            counter[0] += 1
            head = (
                f"POST /v1/models/penguin:predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            began = time.perf_counter()
            writer.write(head + body)
            status = (await reader.readline()).split(b" ", 2)[1]
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if status != b"200" or b'"predictions"' not in payload:
                errors.append(payload[:200].decode(errors="replace"))
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        errors.append(f"connection: {e.__class__.__name__}")
    finally:
        writer.close()


async def load(url: str, bodies: list[bytes], requests: int, clients: int) -> tuple[float, list[float], list[str]]:
    """Sends `requests` requests over `clients` connections: (seconds, latencies, errors)."""
    host, port = url.removeprefix("http://").split(":")
    latencies, errors, counter = [], [], [0]
    began = time.perf_counter()
    await asyncio.gather(
        *(one_client(host, int(port), bodies, counter, requests, latencies, errors) for _ in range(clients))
    )
    return time.perf_counter() - began, latencies, errors + ["unanswered"] * (requests - len(latencies))


def summarise(phases: list[tuple[float, list[float], list[str]]]) -> dict:
    seconds = sum(p[0] for p in phases)
    latencies = sorted(x for p in phases for x in p[1])
    errors = [e for p in phases for e in p[2]]
    return {
        "seconds": seconds,
        "throughput": len(latencies) / seconds,
        "answered": len(latencies),
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def eval_bodies(workdir: Path) -> list[bytes]:
    import glob

    import tensorflow as tf

    files = glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*.gz"))
    bodies = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        row = {}
        for name in FEATURES:
            kind = feature[name].WhichOneof("kind")
            values = list(getattr(feature[name], kind).value) if kind else []
            value = values[0] if values else None
            row[name] = value.decode() if isinstance(value, bytes) else value
        bodies.append(json.dumps({"instances": [row]}).encode())
    return bodies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="penguin workdir with a pushed model (default: run one)")
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="load phases per server, interleaved across servers")
    parser.add_argument("--naive-server", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--without-model", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        naive_server(args.naive_server, call_model=not args.without_model)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="keel-bench-serving-"))
    workdir = Path(args.workdir) if args.workdir else scratch / "work"
    if not args.workdir:
        subprocess.run([sys.executable, "-m", "keel.cli", "run", str(SPEC), "--workdir", str(workdir)], check=True)
    versions = sorted((workdir / "serving" / "penguin").iterdir(), key=lambda p: int(p.name))
    bodies = eval_bodies(workdir)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    keel = [
        sys.executable,
        "-m",
        "keel.cli",
        "serve",
        "--workdir",
        str(workdir),
        "--port",
        "0",
        "--grpc-port",
        "-1",
        "--log-dir",
        str(scratch / "logs"),
    ]
    servers = [
        ("keel serve (batching)", keel, env),
        ("keel serve (no batching)", keel + ["--max-batch-size", "1"], env),
        (
            "naive (one SavedModel call per request)",
            [sys.executable, __file__, "--naive-server", str(versions[-1])],
            env,
        ),
        (
            "HTTP floor (same parsing, no model call)",
            [sys.executable, __file__, "--naive-server", str(versions[-1]), "--without-model"],
            env,
        ),
    ]
    running = {}
    try:
        for index, (name, command, server_env) in enumerate(servers):
            out = scratch / f"server-{index}.out"
            running[name] = (*start(command, server_env, out), out)
        for _, url, _ in running.values():  # warm-up: two requests per client
            asyncio.run(load(url, bodies, 2 * args.clients, args.clients))
        phases = {name: [] for name in running}
        for _ in range(args.rounds):  # interleaved, so changes in the machine's load hit every server alike
            for name, (_, url, _) in running.items():
                phases[name].append(asyncio.run(load(url, bodies, args.requests // args.rounds, args.clients)))
    finally:
        for process, _, _ in running.values():
            process.terminate()
        for process, _, _ in running.values():
            process.wait(60)
    results = {}
    for name, (_, _, out) in running.items():
        results[name] = summarise(phases[name])
        stopped = [line for line in out.read_text().splitlines() if line.startswith("stopped:")]
        results[name]["server"] = stopped[0] if stopped else ""
        r = results[name]
        print(
            f"{name}: {r['throughput']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"errors {r['errors']} {r['first_error']}",
            flush=True,
        )

    naive = results["naive (one SavedModel call per request)"]["throughput"]
    batched = results["keel serve (batching)"]
    ratio = batched["throughput"] / naive
    lines = [
        "# Serving benchmark",
        "",
        f"Command: `.venv/bin/python bench/serving.py --requests {args.requests} --clients {args.clients} "
        f"--rounds {args.rounds}`; load average before the run: {load_before}; "
        f"host: {platform.machine()}, {os.cpu_count()} CPU cores (shared by the server and the load generator), "
        f"Python {platform.python_version()}; model: penguin version {versions[-1].name}; each request is one "
        "eval row in TF Serving's row form, over keep-alive HTTP/1.1 connections on 127.0.0.1.",
        "",
        "| server | throughput (req/s) | vs naive | p50 (ms) | p99 (ms) | errors | server's own count |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['throughput']:.0f} | {r['throughput'] / naive:.2f}x | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} | {r['server'].removeprefix('stopped: ')} |"
        )
    met = ratio >= GOAL_RATIO and batched["errors"] == 0
    lines += [
        "",
        f"Goal: keel serve with micro-batching >= {GOAL_RATIO:g}x the naive server's throughput at "
        f"{args.clients} concurrent clients with 0 errors: {'met' if met else 'not met'} "
        f"({ratio:.2f}x, {batched['errors']} errors).",
        "",
    ]
    floor = results.get("HTTP floor (same parsing, no model call)")
    if floor:
        lines += [
            f"The HTTP floor, the same stack answering without the model, is {floor['throughput']:.0f} req/s, "
            f"{floor['throughput'] / naive:.2f}x the naive server: no server on this stack gets further "
            "above naive on this machine, however it batches.",
            "",
        ]
    write_results(RESULTS, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
