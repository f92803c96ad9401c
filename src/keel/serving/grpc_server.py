"""TF Serving's gRPC API: `PredictionService` and `ModelService` on a `grpc.aio` server.

    PredictionService.Predict           TensorProto inputs -> TensorProto outputs (`output_filter` honoured)
    PredictionService.Classify/Regress  tf.Examples to a signature of method tensorflow/serving/classify or
                                        /regress (Models.examples_signature's choice, as over REST: the one
                                        named, else serving_default if of that method, else the version's one
                                        signature of it); otherwise INVALID_ARGUMENT naming its signatures
    PredictionService.GetModelMetadata  the SignatureDefMap, packed in Any under metadata["signature_def"]
    ModelService.GetModelStatus         model_version_status, as over REST

The server runs on the event loop of the REST server and calls the same `service.Models`, so both
APIs share the micro-batcher, the hot reload, the request log and the metrics, and answer errors
alike: an `ApiError` is aborted with its `grpc_code` and the message REST answers with.

`model_spec` picks the model by name, and a version (Int64Value) or a version_label; the response's
model_spec names the version that answered. A Predict without a signature_name runs the model's
default signature (keel's `serving_raw`, as over REST), or `serving_default` when the inputs are
exactly that signature's (`examples`, serialized tf.Examples, what TF Serving clients send it).
The request id is the `x-request-id` metadata, else the request's client_id, else a new one; it is
sent back as `x-request-id` initial metadata and logged as the PredictionLog's client_id.
"""

import logging
import time
import uuid

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from keel.executors.signatures import CLASSIFY_METHOD, REGRESS_METHOD
from keel.serving import grpc_codec
from keel.serving.codec import RequestError
from keel.serving.service import ApiError, InvalidArgument, ModelFailed, Models, quoted
from keel.serving.versions import LoadedVersion, ServingError

log = logging.getLogger("keel.serve")

MAX_MESSAGE_BYTES = 4 << 20  # gRPC's own default receive limit; larger requests get RESOURCE_EXHAUSTED


def _wanted(model_spec) -> tuple[str, str | None, str | None]:
    """(name, version, label) of a ModelSpec; version and label are None when not set."""
    version = str(model_spec.version.value) if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


def _answered_spec(into, loaded: LoadedVersion, signature: str = "") -> None:
    into.name = loaded.name
    into.version.value = int(loaded.version)
    into.signature_name = signature


def _request_id(context: grpc.aio.ServicerContext, client_id: bytes = b"") -> str:
    sent = dict(context.invocation_metadata() or ()).get("x-request-id") or client_id.decode("utf-8", "replace")
    request_id = sent or uuid.uuid4().hex
    if len(request_id) > 128 or not request_id.isprintable():
        raise InvalidArgument(
            "the request id (x-request-id metadata or client_id) must be at most 128 printable characters"
        )
    return request_id


async def _abort(context: grpc.aio.ServicerContext, error: ApiError) -> None:
    await context.abort(grpc.StatusCode[error.grpc_code], str(error))


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's PredictionService over `models`."""

    def __init__(self, models: Models):
        self.models = models

    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        """Runs a signature on the request's tensors; answers the outputs asked for (all when no filter)."""
        received = time.time()
        name, version, label = _wanted(request.model_spec)
        loaded, signature = None, request.model_spec.signature_name
        try:
            request_id = _request_id(context, request.client_id)
            loaded = self.models.resolve(name, version, label)
            examples = loaded.signature_inputs.get("serving_default")
            if not signature and examples is not None and set(request.inputs) == set(examples):
                signature = "serving_default"
            signature = self.models.signature(loaded, signature)
            try:
                arrays, rows = grpc_codec.signature_arrays(request.inputs, loaded.signature_inputs[signature])
            except RequestError as e:
                raise InvalidArgument(str(e)) from None
            outputs_known = loaded.signature_defs[signature].get("outputs", {})
            unknown = sorted(set(request.output_filter) - set(outputs_known))
            if unknown:
                raise InvalidArgument(
                    f"output_filter: no output {quoted(unknown[0])} in signature {quoted(signature)}; it has: "
                    f"{', '.join(sorted(outputs_known))}"
                )
        except ApiError as e:
            self.models.rejected(name, loaded.version if loaded else "", signature, "grpc", e, received)
            await _abort(context, e)
        try:
            outputs = await self.models.predict(loaded, signature, arrays, rows, request_id, "grpc", received)
        except ApiError as e:  # counted by predict
            await _abort(context, e)
        await context.send_initial_metadata((("x-request-id", request_id),))
        response = predict_pb2.PredictResponse()
        _answered_spec(response.model_spec, loaded, signature)
        for output in request.output_filter or outputs:
            response.outputs[output].CopyFrom(grpc_codec.to_proto(outputs[output]))
        return response

    async def _examples_call(self, request, context, method: str):
        """Resolves and runs a Classify or Regress request; returns (loaded, signature, outputs, rows).

        The signature is `Models.examples_signature`'s choice, as over REST."""
        received = time.time()
        name, version, label = _wanted(request.model_spec)
        loaded, signature = None, request.model_spec.signature_name
        try:
            request_id = _request_id(context)
            loaded = self.models.resolve(name, version, label)
            signature = self.models.examples_signature(loaded, signature, method)
            try:
                examples = grpc_codec.serialized_examples(request.input)
            except RequestError as e:
                raise InvalidArgument(str(e)) from None
        except ApiError as e:
            self.models.rejected(name, loaded.version if loaded else "", signature, "grpc", e, received)
            await _abort(context, e)
        rows = len(examples)
        try:
            outputs = await self.models.predict(
                loaded, signature, {"inputs": examples}, rows, request_id, "grpc", received
            )
        except ApiError as e:  # counted by predict
            await _abort(context, e)
        await context.send_initial_metadata((("x-request-id", request_id),))
        return loaded, signature, outputs, rows

    async def Classify(self, request, context) -> classification_pb2.ClassificationResponse:
        """Classifies tf.Examples with a tensorflow/serving/classify signature (see Models.examples_signature)."""
        loaded, signature, outputs, rows = await self._examples_call(request, context, CLASSIFY_METHOD)
        response = classification_pb2.ClassificationResponse()
        _answered_spec(response.model_spec, loaded, signature)
        try:
            response.result.CopyFrom(grpc_codec.classification_result(outputs, rows))
        except ValueError as e:
            await _abort(context, ModelFailed(f"the model failed: {e}"))
        return response

    async def Regress(self, request, context) -> regression_pb2.RegressionResponse:
        """Regresses tf.Examples with a tensorflow/serving/regress signature (see Models.examples_signature)."""
        loaded, signature, outputs, rows = await self._examples_call(request, context, REGRESS_METHOD)
        response = regression_pb2.RegressionResponse()
        _answered_spec(response.model_spec, loaded, signature)
        try:
            response.result.CopyFrom(grpc_codec.regression_result(outputs, rows))
        except ValueError as e:
            await _abort(context, ModelFailed(f"the model failed: {e}"))
        return response

    async def MultiInference(self, request, context):
        """Not served: answers UNIMPLEMENTED."""
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not served; call Predict, Classify or Regress"
        )

    async def GetModelMetadata(self, request, context) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """The version's SignatureDefMap under metadata["signature_def"], the one field TF Serving has."""
        try:
            if not request.metadata_field:
                raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise InvalidArgument(f"Metadata field {field} is not supported; the one field is signature_def")
            loaded = self.models.resolve(*_wanted(request.model_spec))
        except ApiError as e:
            await _abort(context, e)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in loaded.signature_defs.items():
            json_format.ParseDict(signature_def, signatures.signature_def[key])
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _answered_spec(response.model_spec, loaded)
        response.metadata["signature_def"].Pack(signatures)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's ModelService.GetModelStatus over `models`."""

    def __init__(self, models: Models):
        self.models = models

    async def GetModelStatus(self, request, context) -> get_model_status_pb2.GetModelStatusResponse:
        """The model's version states; only the asked-for version's when a version or label is given."""
        try:
            entries = self.models.status(*_wanted(request.model_spec))
        except ApiError as e:
            await _abort(context, e)
        return json_format.ParseDict({"model_version_status": entries}, get_model_status_pb2.GetModelStatusResponse())

    async def HandleReloadConfigRequest(self, request, context):
        """Not served: the served models come from the command line and their registries."""
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "HandleReloadConfigRequest is not served; restart keel serve with the new models",
        )


async def start_grpc(
    models: Models, host: str, port: int, max_message_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[grpc.aio.Server, int]:
    """Starts the gRPC server for `models` on host:port (0 picks a free port); returns it and its port.

    Call it on the event loop that serves REST, after `models.start()`; stop it with
    `await server.stop(grace_seconds)` before `models.stop()`, so running calls finish on the batcher.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(models), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(models), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as e:
        raise ServingError(f"cannot listen for gRPC on {address}: {e}") from None
    if bound == 0:
        raise ServingError(f"cannot listen for gRPC on {address}")
    await server.start()
    return server, bound
