"""The REST server: TF Serving's model status, metadata, predict, classify and regress endpoints.

    GET  /v1/models/NAME[/versions/V|/labels/L]             version status
    GET  /v1/models/NAME[/versions/V|/labels/L]/metadata    signatures (SignatureDefs as TF Serving renders them)
    POST /v1/models/NAME[/versions/V|/labels/L]:predict     row (`instances`) or columnar (`inputs`) form
    POST /v1/models/NAME[/versions/V|/labels/L]:classify    `examples` (and `context`) as tf.Examples -> `results`
    POST /v1/models/NAME[/versions/V|/labels/L]:regress     the same, to a regress signature
    GET  /monitoring/prometheus/metrics                     Prometheus metrics (keel.serving.metrics)

Every model of `Models` (keel.serving.service) is served under its name; labels are the registry's
stages. All three POST endpoints go through `Models.predict`: one micro-batcher, request log and
metrics. Classify and Regress pick their signature with `Models.examples_signature`, as gRPC does.
Errors are `{"error": "..."}` with a 4xx status (5xx only when the model itself fails). A watcher
polls each model's directory and swaps in a newly pushed (or newly promoted) version once it has
loaded; requests already running finish on the version they started on, so none are dropped.
`serve` also runs TF Serving's gRPC API (keel.serving.grpc_server) on the same event loop and `Models`.
"""

import contextlib
import functools
import logging
import socket
import time
import uuid

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keel.executors.signatures import CLASSIFY_METHOD, REGRESS_METHOD
from keel.serving import codec, metrics
from keel.serving.config import ServeConfig
from keel.serving.grpc_server import start_grpc
from keel.serving.service import ApiError, InvalidArgument, ModelFailed, Models, TooLarge
from keel.serving.versions import LoadedVersion, ServingError

log = logging.getLogger("keel.serve")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {declared} bytes; the limit is {limit} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is over the limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(models: Models, on_ready=None, on_stopped=None, grpc_port: int | None = None) -> Starlette:
    """The Starlette application serving every model of `models`.

    With a `grpc_port` (0 picks one) its lifespan also runs the gRPC API on the same event loop and
    sets `app.state.grpc_port` to the bound port. `on_ready` is called once it is listening,
    `on_stopped` after shutdown has stopped gRPC, drained the batcher and closed the request logs.
    """
    config = models.config

    def api(handler):
        @functools.wraps(handler)
        async def wrapped(request: Request):
            try:
                return await handler(request, request.path_params["name"])
            except ApiError as e:
                return JSONResponse({"error": str(e)}, status_code=e.http_status)

        return wrapped

    def spec(request: Request) -> tuple[str | None, str | None]:
        return request.path_params.get("version"), request.path_params.get("label")

    @api
    async def status(request: Request, name: str):
        return JSONResponse({"model_version_status": models.status(name, *spec(request))})

    @api
    async def metadata(request: Request, name: str):
        version = models.resolve(name, *spec(request))
        return JSONResponse(
            {
                "model_spec": {"name": version.name, "signature_name": "", "version": version.version},
                "metadata": {"signature_def": {"signature_def": version.signature_defs}},
            }
        )

    def request_id_of(request: Request) -> str:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(request_id) > 128 or not request_id.isprintable():
            raise InvalidArgument("the X-Request-Id header must be at most 128 printable characters")
        return request_id

    async def answer(request: Request, name: str, prepare) -> Response:
        """What :predict, :classify and :regress share: the version, the body, one `Models.predict` call
        (the micro-batcher, the request log and the metrics) and the JSON answer.

        `prepare(version, decoded_body)` returns (signature, arrays, rows, render); `render(outputs)`
        gives the answer, and a ValueError from it is the model's outputs not fitting the API (500).
        """
        received = time.time()
        version = None
        try:
            request_id = request_id_of(request)
            version = models.resolve(name, *spec(request))
            body = await _read_body(request, config.max_body_bytes)
            try:
                signature, arrays, rows, render = prepare(version, codec.loads(body))
            except codec.RequestError as e:
                raise InvalidArgument(str(e)) from None
        except ApiError as e:
            models.rejected(name, version.version if version else "", "", "rest", e, received)
            raise
        outputs = await models.predict(version, signature, arrays, rows, request_id, "rest", received)
        try:
            answered = render(outputs)
        except ValueError as e:
            raise ModelFailed(f"the model failed: {e}") from None
        return Response(codec.dumps(answered), media_type="application/json", headers={"X-Request-Id": request_id})

    def predict_inputs(version: LoadedVersion, body):
        form = codec.parse_body(body)
        chosen = codec.signature_for(form, version.signature_inputs, version.default_signature)
        signature = models.signature(version, chosen)
        arrays = codec.to_arrays(form, version.signature_inputs[signature])
        return signature, arrays, form.rows, lambda outputs: codec.render(outputs, form.columnar)

    def examples_inputs(method: str, render):
        def prepare(version: LoadedVersion, body):
            form = codec.parse_examples_body(body)
            signature = models.examples_signature(version, form.signature_name, method)
            examples = codec.to_examples(form, codec.example_kinds(version.signature_inputs.get("serving_raw")))
            rows = len(examples)
            return signature, {"inputs": examples}, rows, lambda outputs: render(outputs, rows)

        return prepare

    @api
    async def predict(request: Request, name: str):
        return await answer(request, name, predict_inputs)

    @api
    async def classify(request: Request, name: str):
        return await answer(request, name, examples_inputs(CLASSIFY_METHOD, codec.render_classify))

    @api
    async def regress(request: Request, name: str):
        return await answer(request, name, examples_inputs(REGRESS_METHOD, codec.render_regress))

    async def prometheus(request: Request):
        return Response(models.metrics.text(), media_type=metrics.CONTENT_TYPE)

    async def not_found(request: Request, exc: HTTPException):
        message = (
            exc.detail
            if exc.status_code != 404
            else (
                f"no such endpoint: {request.method} {request.url.path}; expected /v1/models/NAME[/versions/V|"
                "/labels/L][/metadata], POST /v1/models/NAME[/versions/V|/labels/L]:predict, :classify, :regress or "
                "/monitoring/prometheus/metrics"
            )
        )
        return JSONResponse({"error": message}, status_code=exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await models.start()
        grpc = None
        if grpc_port is not None:
            grpc, app.state.grpc_port = await start_grpc(models, config.host, grpc_port, config.max_body_bytes)
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if grpc is not None:
                await grpc.stop(30)  # running calls finish on the batcher before it drains
            await models.stop()
            if on_stopped is not None:
                on_stopped()

    base = "/v1/models/{name}"
    paths = [base, base + "/versions/{version}", base + "/labels/{label}"]
    routes = [
        *(Route(path + ":predict", predict, methods=["POST"]) for path in paths),
        *(Route(path + ":classify", classify, methods=["POST"]) for path in paths),
        *(Route(path + ":regress", regress, methods=["POST"]) for path in paths),
        *(Route(path + "/metadata", metadata, methods=["GET"]) for path in paths),
        *(Route(path, status, methods=["GET"]) for path in paths),
        Route("/monitoring/prometheus/metrics", prometheus, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ServingError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def serve(config: ServeConfig) -> None:
    """Loads the models, serves REST on config.host:config.port and gRPC on config.grpc_port (unless
    it is -1) until SIGINT or SIGTERM.

    On a signal uvicorn stops accepting connections and lets running requests finish; then the gRPC
    server stops (running calls get 30 s), the batcher drains and the request log is flushed and closed.
    """
    import uvicorn

    models = Models(config)
    sock = _listen(config.host, config.port)
    host, port = sock.getsockname()[:2]
    if config.grpc_port > 0:  # a taken port is a one-line error here, not a failed startup inside uvicorn
        try:
            _listen(config.host, config.grpc_port).close()
        except ServingError as e:
            raise ServingError(f"--grpc-port: {e}") from None

    monitors = []

    def ready():
        servers = list(models.servers.values())
        if config.monitor_every > 0 and config.log_sample_rate > 0:
            from keel.monitoring import beside

            watched = [(s.source.workdir, s.log_dir) for s in servers if s.source.workdir is not None]
            monitors.extend(beside.start(watched, config.monitor_every))
        logs = ", ".join(str(s.log_dir) for s in servers)
        logging_to = f"request logs in {logs}" if config.log_sample_rate > 0 else "request logging off"
        batching = (
            f"micro-batching up to {config.max_batch_size} rows, {config.batch_wait_ms:g} ms"
            if config.max_batch_size > 1
            else "micro-batching off"
        )
        served = ", ".join(f"{s.name} version {s.current.version}" for s in servers)
        grpc = f"gRPC {host}:{app.state.grpc_port}" if config.grpc_port >= 0 else "gRPC off"
        print(
            f"serving {served} at http://{host}:{port} ({grpc}; {batching}; {logging_to})",
            flush=True,
        )

    def stopped():
        if monitors:
            from keel.monitoring import beside

            beside.stop(monitors)
        batches = models.batcher.batches
        mean = f", {models.batcher.batched_rows / batches:.1f} rows per model call" if batches else ""
        servers = models.servers.values()
        answered, logged = sum(s.requests for s in servers), sum(s.request_log.written for s in servers)
        print(
            f"stopped: answered {answered} predict requests{mean}; {logged} logged",
            flush=True,
        )

    app = create_app(models, ready, stopped, config.grpc_port if config.grpc_port >= 0 else None)
    uv = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30, lifespan="on")
    )
    uv.run(sockets=[sock])
