"""The REST server: TF Serving's model status, metadata and predict endpoints on Starlette/uvicorn.

    GET  /v1/models/NAME[/versions/V]             version status
    GET  /v1/models/NAME[/versions/V]/metadata    signatures (SignatureDefs as TF Serving renders them)
    POST /v1/models/NAME[/versions/V]:predict     row (`instances`) or columnar (`inputs`) form

Errors are `{"error": "..."}` with a 4xx status (5xx only when the model itself fails). A watcher
polls the model's directory and swaps in a newly pushed (or newly promoted) version once it has
loaded; requests already running finish on the version they started on, so none are dropped.
"""

import asyncio
import contextlib
import functools
import json
import logging
import socket
import sys
import time
import uuid
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keel.serving import codec, versions
from keel.serving.batching import MicroBatcher
from keel.serving.config import ServeConfig
from keel.serving.request_log import LoggedRequest, RequestLogWriter
from keel.serving.versions import LoadedVersion, ServingError

log = logging.getLogger("keel.serve")


class _ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ModelServer:
    """The served model: the loaded version, the watcher that replaces it, batching and logging."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.name, self.root = versions.model_root(config.workdir, config.model)
        version = versions.chosen_version(config.workdir, self.name, self.root)
        if version is None:
            raise ServingError(
                f"{self.root}: no pushed version to serve (a version is a numbered directory with saved_model.pb)"
            )
        self.failed: dict[str, tuple[tuple, str]] = {}  # version -> (fingerprint it failed with, error)
        self.current: LoadedVersion = self._load_at_start(version)
        self.batcher = MicroBatcher(config.max_batch_size, config.batch_wait_ms / 1000)
        self.log_dir = Path(config.log_dir or Path(config.workdir) / "request_logs" / self.name)
        self.request_log = RequestLogWriter(self.log_dir, config.log_sample_rate, config.log_max_bytes)
        self.requests = 0

    def _load_at_start(self, chosen: str) -> LoadedVersion:
        """Loads `chosen`, or else the newest older version that loads, so one bad push cannot keep the
        server down; each version that fails is reported and listed in the model status."""
        older = [v for v in reversed(versions.versions(self.root)) if int(v) < int(chosen)]
        for version in [chosen, *older]:
            try:
                return versions.load_version(self.name, self.root, version)
            except Exception as e:  # a corrupt or foreign SavedModel: say so, try the one before it
                error = f"{e.__class__.__name__}: {e}".splitlines()[0]
                self.failed[version] = (versions.fingerprint(self.root / version), error)
                print(f"could not load version {version} of {self.name}: {error}", file=sys.stderr, flush=True)
        raise ServingError(
            f"{self.root}: no version of {self.name} loads (tried {', '.join(self.failed)}); see the errors above"
        )

    def served(self, name: str, version: str | None) -> LoadedVersion:
        current = self.current
        if name != self.name:
            raise _ApiError(404, f"model {name!r} is not served here; this server serves {self.name!r}")
        if version is not None and version != current.version:
            if not version.isdigit():
                raise _ApiError(404, f"version {version!r} is not a version number")
            raise _ApiError(
                404, f"version {version!r} of {name!r} is not being served; the served version is {current.version}"
            )
        return current

    async def watch(self) -> None:
        """Polls for a newly pushed or promoted version and swaps it in once its files stop changing."""
        seen: dict[str, tuple] = {}
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            try:
                await self._look(seen)
            except Exception:  # a bad new version must not stop the server; the current one keeps serving
                log.exception("looking for a new version of %s failed", self.name)

    async def _look(self, seen: dict) -> None:
        target = await asyncio.to_thread(versions.chosen_version, self.config.workdir, self.name, self.root)
        if target is None or target == self.current.version:
            return
        now = await asyncio.to_thread(versions.fingerprint, self.root / target)
        if seen.get(target) != now:
            seen[target] = now  # still being written, or first look: load it on the next look if unchanged
            return
        if self.failed.get(target, (None,))[0] == now:
            return
        try:
            loaded = await asyncio.to_thread(versions.load_version, self.name, self.root, target)
        except Exception as e:
            self.failed[target] = (now, f"{e.__class__.__name__}: {e}".splitlines()[0])
            print(
                f"could not load version {target} of {self.name}; still serving {self.current.version}: "
                f"{self.failed[target][1]}",
                file=sys.stderr,
                flush=True,
            )
            return
        self.failed.pop(target, None)
        previous, self.current = self.current, loaded
        print(f"now serving {self.name} version {loaded.version} (was {previous.version})", flush=True)


def _status(server: ModelServer, version: LoadedVersion) -> list[dict]:
    found = [{"version": version.version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]
    for failed, (_, error) in server.failed.items():
        found.append({"version": failed, "state": "END", "status": {"error_code": "UNKNOWN", "error_message": error}})
    return found


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _ApiError(413, f"the request body is {declared} bytes; the limit is {limit} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _ApiError(413, f"the request body is over the limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(server: ModelServer, on_ready=None, on_stopped=None) -> Starlette:
    """The Starlette application serving `server`'s model.

    `on_ready` is called once it is listening, `on_stopped` after shutdown has drained the batcher and
    closed the request log.
    """
    config = server.config

    def api(handler):
        @functools.wraps(handler)
        async def wrapped(request: Request):
            try:
                return await handler(
                    request, server.served(request.path_params["name"], request.path_params.get("version"))
                )
            except _ApiError as e:
                return JSONResponse({"error": str(e)}, status_code=e.status)

        return wrapped

    @api
    async def status(request: Request, version: LoadedVersion):
        return JSONResponse({"model_version_status": _status(server, version)})

    @api
    async def metadata(request: Request, version: LoadedVersion):
        return JSONResponse(
            {
                "model_spec": {"name": version.name, "signature_name": "", "version": version.version},
                "metadata": {"signature_def": {"signature_def": version.signature_defs}},
            }
        )

    @api
    async def predict(request: Request, version: LoadedVersion):
        received = time.time()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(request_id) > 128 or not request_id.isprintable():
            raise _ApiError(400, "the X-Request-Id header must be at most 128 printable characters")
        body = await _read_body(request, config.max_body_bytes)
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise _ApiError(400, f"the body is not valid JSON: {e}") from None
        try:
            form = codec.parse_body(parsed)
            signature = form.signature_name or version.default_signature
            if signature not in version.signature_inputs:
                raise codec.RequestError(
                    f"signature {signature!r} not found; version {version.version} has: "
                    f"{', '.join(sorted(version.signature_defs))}"
                )
            arrays = codec.to_arrays(form, version.signature_inputs[signature])
        except codec.RequestError as e:
            raise _ApiError(400, str(e)) from None
        try:
            outputs = await server.batcher.submit(
                (version.version, signature), functools.partial(version.predict, signature), arrays, form.rows
            )
        except Exception as e:  # the inputs were valid for the signature, so this is the model failing
            log.exception("the model failed on request %s", request_id)
            raise _ApiError(500, f"the model failed: {e.__class__.__name__}: {str(e).splitlines()[0][:300]}") from None
        server.requests += 1
        server.request_log.add(
            LoggedRequest(request_id, received, version.name, version.version, signature, arrays, outputs)
        )
        return JSONResponse(codec.render(outputs, form.columnar), headers={"X-Request-Id": request_id})

    async def not_found(request: Request, exc: HTTPException):
        message = (
            exc.detail
            if exc.status_code != 404
            else (
                f"no such endpoint: {request.method} {request.url.path}; expected /v1/models/NAME[/versions/V]"
                "[/metadata] or POST /v1/models/NAME[/versions/V]:predict"
            )
        )
        return JSONResponse({"error": message}, status_code=exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await server.batcher.start()
        server.request_log.start()
        watcher = asyncio.create_task(server.watch())
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await server.batcher.stop()
            server.request_log.close()
            if on_stopped is not None:
                on_stopped()

    base = "/v1/models/{name}"
    version = "/v1/models/{name}/versions/{version}"
    routes = [
        Route(base + ":predict", predict, methods=["POST"]),
        Route(version + ":predict", predict, methods=["POST"]),
        Route(base + "/metadata", metadata, methods=["GET"]),
        Route(version + "/metadata", metadata, methods=["GET"]),
        Route(base, status, methods=["GET"]),
        Route(version, status, methods=["GET"]),
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
    """Loads the model, listens on config.host:config.port and serves until SIGINT or SIGTERM.

    On a signal uvicorn stops accepting connections and lets running requests finish; then the
    batcher drains and the request log is flushed and closed.
    """
    import uvicorn

    server = ModelServer(config)
    sock = _listen(config.host, config.port)
    host, port = sock.getsockname()[:2]

    def ready():
        logging_to = f"request logs in {server.log_dir}" if config.log_sample_rate > 0 else "request logging off"
        batching = (
            f"micro-batching up to {config.max_batch_size} rows, {config.batch_wait_ms:g} ms"
            if config.max_batch_size > 1
            else "micro-batching off"
        )
        print(
            f"serving {server.name} version {server.current.version} at http://{host}:{port} "
            f"({batching}; {logging_to})",
            flush=True,
        )

    def stopped():
        batches = server.batcher.batches
        mean = f", {server.batcher.batched_rows / batches:.1f} rows per model call" if batches else ""
        print(
            f"stopped: answered {server.requests} predict requests{mean}; {server.request_log.written} logged",
            flush=True,
        )

    app = create_app(server, ready, stopped)
    uv = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30, lifespan="on")
    )
    uv.run(sockets=[sock])
