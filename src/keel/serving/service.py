"""What the REST and gRPC servers share: the served models, finding a version, predicting, errors.

`Models` holds one `ModelServer` per served model (its loaded version, the watcher that replaces it,
its request log), the one `MicroBatcher` every model's calls go through and the `Metrics`. Both APIs
resolve a model spec with `Models.resolve`, run it with `Models.predict` and answer an `ApiError`
with its `http_status` or `grpc_code`, so REST and gRPC behave alike and are counted alike.

Models come from workdirs (WORKDIR/serving/NAME, the registry in WORKDIR/metadata.sqlite) or from
TF Serving's model config file, whose `base_path` is a directory of numbered versions.

Version labels are the registry's stages (`keel models promote`): `production` names the production
version, `candidate` and `archived` the newest version in that stage. Like TF Serving, a label only
answers for a version that is loaded, and this server loads one version per model, the production
version, else the newest; a label naming another version answers 404 / NOT_FOUND saying which
version it names and which one is loaded. The watcher reads the labels from the registry on each
poll and publishes them together with the version it loads: after a promotion the labels keep their
old assignment while the promoted version loads, then both move at once, so `/labels/production`
goes from the old version to the new one with no request answered 404 in between. If the promoted
version fails to load, the new labels are published and the label answers 404 naming the failure.
"""

import asyncio
import dataclasses
import functools
import logging
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from keel.executors.signatures import CLASSIFY_METHOD, REGRESS_METHOD
from keel.serving import heap, versions
from keel.serving.batching import MicroBatcher
from keel.serving.config import ServeConfig
from keel.serving.metrics import Metrics
from keel.serving.request_log import LoggedRequest, RequestLogWriter
from keel.serving.versions import LoadedVersion, ServingError

log = logging.getLogger("keel.serve")

EXAMPLE_METHODS = {CLASSIFY_METHOD: "classification", REGRESS_METHOD: "regression"}  # method -> TF Serving's word


def _reason(error: Exception) -> str:
    """The line of a TensorFlow error that says what was wrong, without its graph and stack noise."""
    if isinstance(error, UnicodeDecodeError):  # TensorFlow's message quoted the input's non-UTF-8 bytes
        return "an input TensorFlow could not parse (its error quotes bytes that are not UTF-8)"
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    found = [line for line in lines if not line.startswith(noise)] or lines or ["(no message)"]
    return found[0][:200]


def method_names(loaded: LoadedVersion) -> str:
    """`loaded`'s signatures with their methods' last words: "classify (classify), serving_default (predict)"."""
    return ", ".join(
        f"{name} ({d.get('method_name', '').rsplit('/', 1)[-1] or 'no method'})"
        for name, d in sorted(loaded.signature_defs.items())
    )


SHOWN_CHARACTERS = 80


def quoted(value) -> str:
    """A client-sent name as an error shows it: quoted, and cut to SHOWN_CHARACTERS so an answer stays one short line."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS or not isinstance(value, str):
        return text
    return f"{value[: SHOWN_CHARACTERS - 30]!r}... ({len(value)} characters)"


class ApiError(Exception):
    """A request the server answers with an error: `http_status` for REST, `grpc_code` for gRPC."""

    http_status = 500
    grpc_code = "INTERNAL"


class NotFound(ApiError):
    """No such model, version or label."""

    http_status, grpc_code = 404, "NOT_FOUND"


class InvalidArgument(ApiError):
    """The request is malformed or does not fit the signature."""

    http_status, grpc_code = 400, "INVALID_ARGUMENT"


class ModelFailed(ApiError):
    """The inputs were valid for the signature, and the model failed on them."""

    http_status, grpc_code = 500, "INTERNAL"


class TooLarge(ApiError):
    """The request is over a size limit."""

    http_status, grpc_code = 413, "INVALID_ARGUMENT"


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where one served model comes from: `root` holds its numbered versions."""

    name: str  # the name it is served under
    root: Path
    workdir: Path | None  # the workdir whose registry labels it; None outside a workdir
    log_dir: Path

    @property
    def registry_name(self) -> str:
        """The model's name in the registry: its directory under WORKDIR/serving/."""
        return self.root.name


def _log_dir(config: ServeConfig, name: str, default: Path, several: bool) -> Path:
    if config.log_dir is None:
        return default
    return Path(config.log_dir) / name if several else Path(config.log_dir)


def _from_config_file(config: ServeConfig) -> list[tuple[str, Path]]:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(config.model_config_file)
    try:
        text = path.read_text()
    except OSError as e:
        raise ServingError(f"--model-config-file {path}: cannot read it: {e.strerror}") from None
    parsed = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, parsed)
    except text_format.ParseError as e:
        raise ServingError(f"{path}: not a TF Serving model config: {e}") from None
    if parsed.WhichOneof("config") != "model_config_list" or not parsed.model_config_list.config:
        raise ServingError(f"{path}: no models; expected model_config_list {{ config {{ name base_path }} }}")
    found = []
    for model in parsed.model_config_list.config:
        if not model.name or not model.base_path:
            raise ServingError(
                f"{path}: every config needs a name and a base_path; got {text_format.MessageToString(model, as_one_line=True)!r}"
            )
        if model.model_platform not in ("", "tensorflow"):
            raise ServingError(
                f"{path}: model {model.name!r}: model_platform {model.model_platform!r}; only tensorflow is served"
            )
        if model.HasField("model_version_policy") or model.version_labels:
            raise ServingError(
                f"{path}: model {model.name!r}: model_version_policy and version_labels are not supported; "
                "keel serves the production version, else the newest, and its labels are the registry's stages"
            )
        root = Path(model.base_path)
        if not root.is_dir():
            raise ServingError(f"{path}: model {model.name!r}: base_path {root} is not a directory")
        found.append((model.name, root))
    return found


def sources(config: ServeConfig) -> list[ModelSource]:
    """The models `config` asks for: each config-file entry, else the model of each workdir."""
    if config.model_config_file is not None:
        named = _from_config_file(config)
        several = len(named) > 1
        found = []
        for name, root in named:
            workdir = root.parent.parent if root.parent.name == "serving" else None
            default_logs = (workdir / "request_logs" if workdir else root.parent / "request_logs") / name
            found.append(ModelSource(name, root, workdir, _log_dir(config, name, default_logs, several)))
    else:
        workdirs = config.workdirs or (config.workdir,)
        several = len(workdirs) > 1
        found = []
        for workdir in workdirs:
            name, root = versions.model_root(Path(workdir), config.model)
            default_logs = Path(workdir) / "request_logs" / name
            found.append(ModelSource(name, root, Path(workdir), _log_dir(config, name, default_logs, several)))
    seen: dict[str, Path] = {}
    for source in found:
        if source.name in seen:
            raise ServingError(
                f"model {source.name!r} would be served twice, from {seen[source.name]} and {source.root}; "
                "each served model needs its own name"
            )
        seen[source.name] = source.root
    return found


class ModelServer:
    """One served model: its loaded version, its labels, the watcher that replaces it, its request log."""

    def __init__(self, source: ModelSource, config: ServeConfig):
        self.source = source
        self.config = config
        self.name, self.root = source.name, source.root
        self.labels = versions.labels(source.workdir, source.registry_name)
        version = versions.choose(self.root, self.labels)
        if version is None:
            raise ServingError(
                f"{self.root}: no pushed version to serve (a version is a numbered directory with saved_model.pb)"
            )
        self.failed: dict[str, tuple[tuple, str]] = {}  # version -> (fingerprint it failed with, error)
        self.current: LoadedVersion = self._load_at_start(version)
        self.log_dir = source.log_dir
        self.request_log = RequestLogWriter(self.log_dir, config.log_sample_rate, config.log_max_bytes)
        self.requests = 0
        self.replaced = False  # a new version was swapped in and the heap not settled since

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

    def served(self, version: str | None = None, label: str | None = None) -> LoadedVersion:
        """The loaded version answering for `version` or `label` (neither: the served one); NotFound if none."""
        current = self.current
        if label is not None:
            labels = self.labels
            if label not in labels:
                shown = ", ".join(f"{k} (version {v})" for k, v in sorted(labels.items())) or (
                    "none (a label is a registry stage: keel models promote)"
                )
                raise NotFound(f"model {self.name!r} has no label {quoted(label)}; its labels: {shown}")
            if labels[label] != current.version:
                failed = self.failed.get(labels[label])
                why = f" (it failed to load: {failed[1]})" if failed else ""
                raise NotFound(
                    f"label {quoted(label)} of {self.name!r} names version {labels[label]}, which is not loaded{why}; "
                    f"the loaded version is {current.version} (the production version, else the newest)"
                )
            return current
        if version is not None and version != current.version:
            if not version.isdigit():
                raise NotFound(f"version {quoted(version)} is not a version number")
            raise NotFound(
                f"version {quoted(version)} of {self.name!r} is not being served; the served version is {current.version}"
            )
        return current

    def status(self) -> list[dict]:
        """TF Serving's model_version_status entries: the loaded version, then each that failed to load."""
        found = [
            {"version": self.current.version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
        for failed, (_, error) in self.failed.items():
            found.append(
                {"version": failed, "state": "END", "status": {"error_code": "UNKNOWN", "error_message": error}}
            )
        return found

    async def watch(self) -> None:
        """Polls for a newly pushed or promoted version and swaps it in once its files stop changing."""
        seen: dict[str, tuple] = {}
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            if self.replaced:  # a poll after the swap, when requests running on the old version have finished
                self.replaced = False
                heap.settle()
            try:
                await self._look(seen)
            except Exception:  # a bad new version must not stop the server; the current one keeps serving
                log.exception("looking for a new version of %s failed", self.name)

    async def _look(self, seen: dict) -> None:
        labels = await asyncio.to_thread(versions.labels, self.source.workdir, self.source.registry_name)
        target = await asyncio.to_thread(versions.choose, self.root, labels)
        if target is None or target == self.current.version:
            self.labels = labels
            return
        now = await asyncio.to_thread(versions.fingerprint, self.root / target)
        if seen.get(target) != now:
            seen[target] = now  # still being written, or first look: load it on the next look if unchanged
            return
        if self.failed.get(target, (None,))[0] == now:
            self.labels = labels
            return
        try:
            loaded = await asyncio.to_thread(versions.load_version, self.name, self.root, target)
        except Exception as e:
            self.failed[target] = (now, f"{e.__class__.__name__}: {e}".splitlines()[0])
            self.labels = labels
            print(
                f"could not load version {target} of {self.name}; still serving {self.current.version}: "
                f"{self.failed[target][1]}",
                file=sys.stderr,
                flush=True,
            )
            return
        self.failed.pop(target, None)
        previous = self.current
        self.current, self.labels = loaded, labels  # no await between: requests see both move together
        self.replaced = True
        print(f"now serving {self.name} version {loaded.version} (was {previous.version})", flush=True)


class Models:
    """Every model this server serves, by name, with the shared batcher and the metrics."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.servers: dict[str, ModelServer] = {s.name: ModelServer(s, config) for s in sources(config)}
        self.metrics = Metrics(self._request_logs)
        self.batcher = MicroBatcher(config.max_batch_size, config.batch_wait_ms / 1000, on_batch=self.metrics.batch)
        self._watchers: list[asyncio.Task] = []

    def _request_logs(self):
        return [(name, s.request_log.queued, s.request_log.written) for name, s in self.servers.items()]

    def names(self) -> list[str]:
        """The served models' names, sorted."""
        return sorted(self.servers)

    def server(self, name: str) -> ModelServer:
        """The ModelServer of model `name`; NotFound naming the served models."""
        try:
            return self.servers[name]
        except KeyError:
            raise NotFound(
                f"model {quoted(name)} is not served here; this server serves: {', '.join(self.names())}"
            ) from None

    def resolve(self, name: str, version: str | None = None, label: str | None = None) -> LoadedVersion:
        """The loaded version of `name` for a version number or a label (neither: the served one)."""
        if version is not None and label is not None:
            raise InvalidArgument(
                f"model {quoted(name)}: give a version or a label, not both ({quoted(version)}, {quoted(label)})"
            )
        return self.server(name).served(version, label)

    def status(self, name: str, version: str | None = None, label: str | None = None) -> list[dict]:
        """TF Serving's model_version_status entries of `name` (one version's when one is asked for)."""
        server = self.server(name)
        asked = server.served(version, label)
        entries = server.status()
        return entries if version is None and label is None else [e for e in entries if e["version"] == asked.version]

    def signature(self, loaded: LoadedVersion, name: str | None) -> str:
        """`name`, or the version's default signature when it is None or empty; InvalidArgument if unknown."""
        signature = name or loaded.default_signature
        if signature not in loaded.signature_inputs:
            raise InvalidArgument(
                f"signature {quoted(signature)} not found; version {loaded.version} has: "
                f"{', '.join(sorted(loaded.signature_defs))}"
            )
        return signature

    def examples_signature(self, loaded: LoadedVersion, name: str | None, method: str) -> str:
        """The signature a Classify (`method` CLASSIFY_METHOD) or Regress (REGRESS_METHOD) request runs.

        `name` when given; else `serving_default` if it is of `method`, else the version's one signature
        of `method` (keel's `classify` or `regress`), else `serving_default`. The signature must be of
        `method` and take one input, `inputs` (serialized tf.Examples): otherwise InvalidArgument with TF
        Serving's message, naming the version's signatures and their methods.
        """
        if not name:  # serving_default when it is of `method` or when no one other signature is
            of_method = [key for key, d in loaded.signature_defs.items() if d.get("method_name") == method]
            name = of_method[0] if len(of_method) == 1 else "serving_default"
        signature = self.signature(loaded, name)
        has = loaded.signature_defs[signature].get("method_name", "")
        kind = EXAMPLE_METHODS[method]
        if has != method:
            raise InvalidArgument(
                f"Expected {kind} signature method_name to be {method}. Was: {has or 'none'} "
                f"(signature {quoted(signature)}); version {loaded.version} of {loaded.name!r} has: {method_names(loaded)}"
            )
        inputs = loaded.signature_inputs[signature]
        if list(inputs) != ["inputs"]:
            raise InvalidArgument(
                f"{kind} signature {quoted(signature)} takes {', '.join(sorted(inputs))}; expected one input 'inputs'"
            )
        return signature

    def rejected(self, name: str, version: str, signature: str, api: str, error: ApiError, received: float) -> None:
        """Counts a predict request answered with `error` before it reached `predict` (bad body, no such model).

        A name that is no served model, or a signature its loaded version does not have, is counted as "",
        so clients cannot grow the label sets.
        """
        server = self.servers.get(name)
        model = name if server is not None else ""
        known = server is not None and signature in server.current.signature_inputs
        self.metrics.answered(model, version, signature if known else "", api, error.grpc_code, time.time() - received)

    async def predict(
        self,
        loaded: LoadedVersion,
        signature: str | None,
        arrays: dict[str, np.ndarray],
        rows: int,
        request_id: str,
        api: str,
        received: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs `arrays` through `loaded`'s signature in a shared batch; logs and counts the request.

        `rows` is the request's row count (the arrays' batch dimension), by which the batcher splits the
        batch's outputs; `api` is "rest" or "grpc"; `received` is when the request arrived (time.time()).
        """
        received = time.time() if received is None else received
        try:
            signature = self.signature(loaded, signature)
        except InvalidArgument as e:
            self.rejected(loaded.name, loaded.version, "", api, e, received)
            raise
        try:
            outputs = await self.batcher.submit(
                (loaded.name, loaded.version, signature), functools.partial(loaded.predict, signature), arrays, rows
            )
        except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as e:  # e.g. a string that is no tf.Example
            refused = InvalidArgument(f"the model refused the inputs: {_reason(e)}")
            self.rejected(loaded.name, loaded.version, signature, api, refused, received)
            raise refused from None
        except Exception as e:  # the inputs were valid for the signature, so this is the model failing
            log.exception("the model failed on request %s", request_id)
            failed = ModelFailed(f"the model failed: {e.__class__.__name__}: {str(e).splitlines()[0][:300]}")
            self.rejected(loaded.name, loaded.version, signature, api, failed, received)
            raise failed from None
        server = self.servers[loaded.name]
        server.requests += 1
        server.request_log.add(
            LoggedRequest(request_id, received, loaded.name, loaded.version, signature, arrays, outputs)
        )
        self.metrics.answered(loaded.name, loaded.version, signature, api, "OK", time.time() - received)
        return outputs

    async def start(self) -> None:
        """Starts the batcher, the request logs and each model's version watcher."""
        await self.batcher.start()
        for server in self.servers.values():
            server.request_log.start()
        self._watchers = [asyncio.create_task(s.watch()) for s in self.servers.values()]
        heap.settle()

    async def stop(self) -> None:
        """Stops the watchers, drains the batcher, then writes and closes the request logs."""
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await self.batcher.stop()
        for server in self.servers.values():
            server.request_log.close()
