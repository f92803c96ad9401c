"""Benchmark: `keel serve` with and without micro-batching against naive servers, REST and gRPC, on loopback.

    .venv/bin/python bench/serving.py [--workdir DIR] [--requests 10000] [--clients 64] [--rounds 5]

Needs a penguin workdir with a pushed model: DIR, or a fresh temporary one that `keel run
pipelines/penguin.toml` fills first. The servers run at once, each in its own subprocess on
127.0.0.1, and get the same load: CLIENTS concurrent clients sending REQUESTS predict requests of
one eval row each (after a warm-up of 2 requests per client), from this process, in ROUNDS phases
that take turns between the servers and APIs, so a change in the machine's other load during the
run falls on all of them alike. REST clients are keep-alive HTTP/1.1 connections sending TF
Serving's row form; gRPC clients are one channel each with TF Serving's own
`PredictionServiceStub` sending a PredictRequest of one TensorProto per feature. Servers:

- keel serve (batching): the defaults, micro-batches of up to 64 rows, 2 ms wait; REST and gRPC;
- keel serve (no batching): `--max-batch-size 1`, one model call per request; REST and gRPC;
- naive REST: a Starlette app on uvicorn that parses the body with keel's codec and calls the
  SavedModel's `serving_raw` once per request, inside its handler;
- naive gRPC: a grpc.aio PredictionService that reads the tensors with keel's codec and calls
  `serving_raw` once per request, inside its handler;
- REST / gRPC floor: the naive servers answering without calling the model, the ceiling of each
  stack on this machine (no server built on it can be faster).

Request logging stays on for keel serve (its default). Reports throughput, p50 and p99 latency and
errors per server and API, and the throughput ratio to the naive server of the same API, measured
in the same run; the load generator shares this machine's cores with the servers. Results go to
bench/results/serving.md.
"""

import argparse
import asyncio
import gc
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
GOAL_RATIO = 4.0
GOAL_P99_MS = 50.0
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]
SIGNATURE = "serving_raw"
BATCHING, NO_BATCHING, NAIVE, FLOOR = "batching", "no batching", "naive", "floor"
KIND_NAMES = {
    BATCHING: "keel serve (batching)",
    NO_BATCHING: "keel serve (no batching)",
    NAIVE: "naive (one SavedModel call per request)",
    FLOOR: "floor (same parsing, no model call)",
}
API_NAMES = {"rest": "REST", "grpc": "gRPC"}

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(REPO / "src"))


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


def _answer_once(signature, call_model: bool):
    """Calls `signature` on typed arrays; without `call_model`, answers the first answer again."""
    import tensorflow as tf

    answered = {}

    def answer(arrays):
        if call_model or not answered:
            outputs = signature(**{name: tf.constant(values) for name, values in arrays.items()})
            answered["outputs"] = {k: v.numpy() for k, v in outputs.items()}
        return answered["outputs"]

    return answer


def naive_rest_server(model_dir: str, call_model: bool = True) -> None:
    """The REST baseline: one SavedModel call per request, made in the request handler."""
    import tensorflow as tf
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from keel.serving import codec

    signature = tf.saved_model.load(model_dir).signatures[SIGNATURE]
    inputs = dict(signature.structured_input_signature[1])
    answer = _answer_once(signature, call_model)

    async def predict(request):
        form = codec.parse_body(json.loads(await request.body()))
        return JSONResponse(codec.render(answer(codec.to_arrays(form, inputs)), form.columnar))

    app = Starlette(routes=[Route("/v1/models/penguin:predict", predict, methods=["POST"])])
    sock = _listening_socket()
    print(f"serving naive at http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def naive_grpc_server(model_dir: str, call_model: bool = True) -> None:
    """The gRPC baseline: one SavedModel call per request, made in the Predict handler."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from keel.serving import grpc_codec

    signature = tf.saved_model.load(model_dir).signatures[SIGNATURE]
    inputs = dict(signature.structured_input_signature[1])
    answer = _answer_once(signature, call_model)

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):
            arrays, _ = grpc_codec.signature_arrays(request.inputs, inputs)
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(request.model_spec)
            for name, values in answer(arrays).items():
                response.outputs[name].CopyFrom(grpc_codec.to_proto(values))
            return response

    async def serve():
        server = grpc.aio.server()
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"serving naive at grpc://127.0.0.1:{port}", flush=True)
        await server.wait_for_termination()

    asyncio.run(serve())


def start(command: list[str], env: dict, out: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """Starts a server; returns it and its addresses by API ("rest": http://..., "grpc": host:port)."""
    handle = open(out, "w")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready = [line for line in out.read_text().splitlines() if line.startswith("serving ")]
        if ready:
            address = ready[0].split(" at ", 1)[1].split()[0]
            if address.startswith("grpc://"):
                return process, {"grpc": address.removeprefix("grpc://")}
            addresses = {"rest": address}
            if "(gRPC " in ready[0]:
                addresses["grpc"] = ready[0].split("(gRPC ", 1)[1].split(";")[0]
            return process, addresses
        if process.poll() is not None:
            raise SystemExit(f"server exited: {out.read_text()[-2000:]}")
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start")


async def rest_client(
    address: str, bodies: list[bytes], counter: list[int], limit: int, latencies: list[float], errors: list[str]
) -> None:
    """One keep-alive HTTP/1.1 connection sending requests until `limit` have been sent in all."""
    host, port = address.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
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


async def grpc_client(
    address: str, requests: list, counter: list[int], limit: int, latencies: list[float], errors: list[str]
) -> None:
    """One channel with TF Serving's PredictionServiceStub, calling Predict until `limit` have been sent."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while counter[0] < limit:
            request = requests[counter[0] % len(requests)]
            counter[0] += 1
            began = time.perf_counter()
            try:
                response = await stub.Predict(request, timeout=60)
            except grpc.aio.AioRpcError as e:
                latencies.append(time.perf_counter() - began)
                errors.append(f"{e.code().name}: {e.details()[:200]}")
                continue
            latencies.append(time.perf_counter() - began)
            if "probabilities" not in response.outputs:
                errors.append(f"no probabilities in {sorted(response.outputs)}")


async def load(api: str, address: str, payloads: list, requests: int, clients: int) -> tuple:
    """Sends `requests` requests over `clients` clients of `api`: (seconds, latencies, errors)."""
    client = rest_client if api == "rest" else grpc_client
    latencies, errors, counter = [], [], [0]
    began = time.perf_counter()
    await asyncio.gather(*(client(address, payloads, counter, requests, latencies, errors) for _ in range(clients)))
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


def eval_rows(workdir: Path) -> list[dict]:
    """The penguin eval split's rows that have every feature (missing values differ between the APIs)."""
    import glob

    import tensorflow as tf

    files = glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*" / "Split-eval" / "*.gz"))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        row = {}
        for name in FEATURES:
            kind = feature[name].WhichOneof("kind")
            values = list(getattr(feature[name], kind).value) if kind else []
            row[name] = values[0].decode() if values and isinstance(values[0], bytes) else (values or [None])[0]
        if None not in row.values():
            rows.append(row)
    return rows


def rest_bodies(rows: list[dict]) -> list[bytes]:
    return [json.dumps({"instances": [row]}).encode() for row in rows]


def grpc_requests(rows: list[dict], model_dir: Path) -> list:
    """One PredictRequest per row: one [1] TensorProto per feature, in the signature's dtypes."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    specs = dict(tf.saved_model.load(str(model_dir)).signatures[SIGNATURE].structured_input_signature[1])
    requests = []
    for row in rows:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "penguin"
        request.model_spec.signature_name = SIGNATURE
        for name, spec in specs.items():
            value = row[name].encode() if spec.dtype == tf.string else row[name]
            dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
            request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array([value], dtype=dtype)))
        requests.append(request)
    return requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="penguin workdir with a pushed model (default: run one)")
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="load phases per server, interleaved across servers")
    parser.add_argument("--naive-server", choices=["rest", "grpc"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--without-model", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        serve = naive_rest_server if args.naive_server == "rest" else naive_grpc_server
        serve(args.model_dir, call_model=not args.without_model)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="keel-bench-serving-"))
    workdir = Path(args.workdir) if args.workdir else scratch / "work"
    if not args.workdir:
        subprocess.run([sys.executable, "-m", "keel.cli", "run", str(SPEC), "--workdir", str(workdir)], check=True)
    versions = sorted((workdir / "serving" / "penguin").iterdir(), key=lambda p: int(p.name))
    rows = eval_rows(workdir)
    payloads = {"rest": rest_bodies(rows), "grpc": grpc_requests(rows, versions[-1])}
    gc.collect()
    gc.freeze()  # TensorFlow's objects, from reading the rows: a full collection over them pauses the clients ~0.2 s
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    keel = [sys.executable, "-m", "keel.cli", "serve", "--workdir", str(workdir), "--port", "0"]
    keel += ["--grpc-port", "0", "--log-dir", str(scratch / "logs")]

    def naive(api: str, *extra: str) -> list[str]:
        return [sys.executable, __file__, "--naive-server", api, "--model-dir", str(versions[-1]), *extra]

    servers = [
        (BATCHING, keel),
        (NO_BATCHING, keel + ["--max-batch-size", "1"]),
        (NAIVE, naive("rest")),
        (NAIVE, naive("grpc")),
        (FLOOR, naive("rest", "--without-model")),
        (FLOOR, naive("grpc", "--without-model")),
    ]
    running = []
    try:
        for index, (kind, command) in enumerate(servers):
            out = scratch / f"server-{index}.out"
            running.append((kind, *start(command, env, out), out))
        targets = [
            (kind, api, address, out) for kind, _, addresses, out in running for api, address in addresses.items()
        ]
        for _, api, address, _ in targets:  # warm-up: two requests per client
            asyncio.run(load(api, address, payloads[api], 2 * args.clients, args.clients))
        phases = {(kind, api): [] for kind, api, _, _ in targets}
        for _ in range(args.rounds):  # interleaved, so changes in the machine's load hit every server alike
            for kind, api, address, _ in targets:
                phases[kind, api].append(
                    asyncio.run(load(api, address, payloads[api], args.requests // args.rounds, args.clients))
                )
    finally:
        for _, process, _, _ in running:
            process.terminate()
        for _, process, _, _ in running:
            process.wait(60)
    results = {}
    for kind, api, _, out in targets:
        r = results[kind, api] = summarise(phases[kind, api])
        stopped = [line for line in out.read_text().splitlines() if line.startswith("stopped:")]
        r["server"] = stopped[0].removeprefix("stopped: ") if stopped else ""
        print(
            f"{KIND_NAMES[kind]} {API_NAMES[api]}: {r['throughput']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']} {r['first_error']}",
            flush=True,
        )
    write_results(RESULTS, report(args, results, load_before, versions[-1].name))
    return 0


def report(args, results: dict, load_before: str, version: str) -> list[str]:
    """The markdown table and the goals, per API."""
    lines = [
        "# Serving benchmark",
        "",
        f"Command: `.venv/bin/python bench/serving.py --requests {args.requests} --clients {args.clients} "
        f"--rounds {args.rounds}`; load average before the run: {load_before}; "
        f"host: {platform.machine()}, {os.cpu_count()} CPU cores (shared by the servers and the load generator), "
        f"Python {platform.python_version()}; model: penguin version {version}; each request is one eval row: "
        "TF Serving's row form over keep-alive HTTP/1.1 (REST), or a PredictRequest from TF Serving's "
        "PredictionServiceStub, one channel per client (gRPC), on 127.0.0.1.",
        "",
        "| server | API | throughput (req/s) | vs naive | p50 (ms) | p99 (ms) | errors | server's own count |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for api, shown in API_NAMES.items():
        naive = results[NAIVE, api]["throughput"]
        for kind, name in KIND_NAMES.items():
            r = results[kind, api]
            lines.append(
                f"| {name} | {shown} | {r['throughput']:.0f} | {r['throughput'] / naive:.2f}x | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['server']} |"
            )
    lines += [
        "",
        f"Goals at {args.clients} concurrent clients, keel serve with micro-batching: >= {GOAL_RATIO:g}x "
        f"the naive server's throughput, p99 under {GOAL_P99_MS:g} ms, 0 errors.",
    ]
    for api, shown in API_NAMES.items():
        batched, naive, floor = results[BATCHING, api], results[NAIVE, api], results[FLOOR, api]
        ratio = batched["throughput"] / naive["throughput"]
        met = ratio >= GOAL_RATIO and batched["p99_ms"] < GOAL_P99_MS and batched["errors"] == 0
        lines.append(
            f"- {shown}: {'met' if met else 'not met'} ({ratio:.2f}x, p99 {batched['p99_ms']:.1f} ms, "
            f"{batched['errors']} errors); the {shown} floor, the same stack answering without the model, is "
            f"{floor['throughput'] / naive['throughput']:.2f}x naive: no server on it gets further above naive here."
        )
    return lines + [""]


if __name__ == "__main__":
    sys.exit(main())
