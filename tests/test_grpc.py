"""`keel serve`'s gRPC API, called with TF Serving's own stubs (tensorflow-serving-api) on a real server."""

import re
import socket
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from keel.cli import main

from serving_helpers import (
    FEATURES,
    Server,
    eval_examples,
    grpc_address,
    grpc_served,
    instance,
    logged_requests,
)


@pytest.fixture(scope="module")
def served(penguin_runs, tmp_path_factory):
    server = grpc_served(penguin_runs.workdir, tmp_path_factory.mktemp("grpc"))
    yield server
    server.channel.close()
    code, out = server.stop()
    assert code in (0, -15), out
    assert "stopped: answered" in out


@pytest.fixture(scope="module")
def examples(penguin_runs):
    return eval_examples(penguin_runs.workdir)


def signatures(served, **spec) -> get_model_metadata_pb2.SignatureDefMap:
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=["signature_def"], model_spec={"name": "penguin", **spec}
    )
    response = served.predictions.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "penguin"
    assert str(response.model_spec.version.value) == served.version
    found = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(found)
    return found


def raw_request(served, rows: list[dict]) -> predict_pb2.PredictRequest:
    """A PredictRequest for `serving_raw` with the dtypes GetModelMetadata says it takes."""
    inputs = signatures(served).signature_def["serving_raw"].inputs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "penguin"
    request.model_spec.signature_name = "serving_raw"
    for name in FEATURES:
        dtype = tf.dtypes.as_dtype(inputs[name].dtype)
        values = [r[name] for r in rows]
        if dtype == tf.string:
            column = np.array([(v or "").encode() for v in values], dtype=object)
        else:
            column = np.array([np.nan if v is None else v for v in values], dtype=dtype.as_numpy_dtype)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(column))
    return request


def int64(version: str) -> dict:
    return {"value": int(version)}


def logged(log_dir, request_ids: set[str], seconds: float = 30) -> dict:
    """The PredictionLog records of `request_ids`, by id, once all are written (the writer is a thread)."""
    deadline = time.monotonic() + seconds
    while True:
        records = {r.predict_log.request.client_id.decode(): r for r in logged_requests(log_dir)}
        if request_ids <= set(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def failure(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value


def test_metadata_and_status_speak_tf_serving(served):
    found = signatures(served)
    assert sorted(found.signature_def) == [
        "classify",
        "serving_default",
        "serving_encoded",
        "serving_raw",
        "transform_features",
    ]
    assert found.signature_def["classify"].method_name == "tensorflow/serving/classify"
    assert sorted(found.signature_def["serving_raw"].inputs) == sorted(FEATURES)
    assert found.signature_def["serving_default"].inputs["examples"].dtype == tf.string.as_datatype_enum
    assert found.signature_def["serving_raw"].outputs["probabilities"].tensor_shape.dim[1].size == 3
    assert found.signature_def["serving_default"].method_name == "tensorflow/serving/predict"
    assert signatures(served, version=int64(served.version)) == found

    status = served.models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "penguin"}))
    assert [(str(s.version), s.state, s.status.error_code) for s in status.model_version_status] == [
        (served.version, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)
    ]
    one = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "penguin", "version": int64(served.version)})
    assert served.models.GetModelStatus(one) == status


def test_predict_gives_rest_s_outputs_for_the_same_rows(served, examples):
    rows = [instance(e, FEATURES) for e in examples]
    assert any(v is None for r in rows for v in r.values()), "the eval split should include missing values"
    rest = served.predict({"inputs": {name: [r[name] for r in rows] for name in FEATURES}})
    assert rest.status_code == 200, rest.text
    expected = rest.json()["outputs"]

    response = served.predictions.Predict(raw_request(served, rows), timeout=30)
    assert response.model_spec.name == "penguin"
    assert str(response.model_spec.version.value) == served.version
    assert response.model_spec.signature_name == "serving_raw"
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    assert probabilities.shape == (len(rows), 3) and probabilities.dtype == np.float32
    np.testing.assert_array_equal(probabilities, np.array(expected["probabilities"], dtype=np.float32))
    assert [c.decode() for c in tf.make_ndarray(response.outputs["classes"])] == expected["classes"]


def test_serialized_examples_go_to_serving_default_without_a_signature_name(served, examples):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "penguin"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([e.SerializeToString() for e in examples]))
    response = served.predictions.Predict(request, timeout=30)
    assert response.model_spec.signature_name == "serving_default"
    by_rows = served.predictions.Predict(raw_request(served, [instance(e, FEATURES) for e in examples]), timeout=30)
    assert tf.make_ndarray(response.outputs["classes"]).tolist() == tf.make_ndarray(by_rows.outputs["classes"]).tolist()


def test_output_filter_and_version_pins_are_honoured(served, examples):
    request = raw_request(served, [instance(examples[0], FEATURES)])
    request.output_filter.append("classes")
    request.model_spec.version.value = int(served.version)
    response = served.predictions.Predict(request, timeout=30)
    assert list(response.outputs) == ["classes"]
    assert str(response.model_spec.version.value) == served.version


def test_unknown_models_versions_and_labels_are_not_found(served, examples):
    request = raw_request(served, [instance(examples[0], FEATURES)])
    request.model_spec.name = "nope"
    error = failure(served.predictions.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "model 'nope' is not served here; this server serves: penguin"

    request.model_spec.name = "penguin"
    request.model_spec.version.value = int(served.version) + 1
    error = failure(served.predictions.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert f"the served version is {served.version}" in error.details()

    request.model_spec.version_label = "no-such-label"
    error = failure(served.predictions.Predict, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "has no label 'no-such-label'; its labels:" in error.details()

    status = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "nope"})
    assert failure(served.models.GetModelStatus, status).code() == grpc.StatusCode.NOT_FOUND
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=["signature_def"], model_spec={"name": "nope"}
    )
    assert failure(served.predictions.GetModelMetadata, metadata).code() == grpc.StatusCode.NOT_FOUND


def test_bad_inputs_are_invalid_arguments_with_rest_s_messages(served, examples):
    rows = [instance(examples[0], FEATURES)]
    request = raw_request(served, rows)
    request.model_spec.signature_name = "nope"
    error = failure(served.predictions.Predict, request)
    rest = served.predict({"signature_name": "nope", "instances": rows})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and rest.status_code == 400
    assert error.details() == rest.json()["error"]

    cases = {
        "island": (tf.make_tensor_proto([1.0]), "input 'island': the signature takes string, got float32"),
        "sex": (tf.make_tensor_proto([[b"a"]]), "input 'sex': shape [1, 1] does not fit the signature's [-1]"),
        "bill_length_mm": (tf.make_tensor_proto([1.0, 2.0]), "the inputs have different batch sizes"),
        "bill_depth_mm": (tf.make_tensor_proto([np.inf]), "input 'bill_depth_mm': holds infinity"),
    }
    for name, (tensor, message) in cases.items():
        request = raw_request(served, rows)
        request.inputs[name].CopyFrom(tensor)
        error = failure(served.predictions.Predict, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert message in error.details(), error.details()

    request = raw_request(served, rows)
    del request.inputs["sex"]
    error = failure(served.predictions.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("missing input 'sex'; the signature takes: bill_depth_mm, ")

    request = raw_request(served, rows)
    request.output_filter.append("logits")
    error = failure(served.predictions.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        error.details()
        == "output_filter: no output 'logits' in signature 'serving_raw'; it has: classes, probabilities"
    )

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=["weights"], model_spec={"name": "penguin"}
    )
    assert failure(served.predictions.GetModelMetadata, metadata).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_classify_goes_to_keel_s_classify_signature_and_regress_names_the_signatures(served, examples):
    classify = classification_pb2.ClassificationRequest(model_spec={"name": "penguin"})
    classify.input.example_list.examples.append(examples[0])
    classified = served.predictions.Classify(classify, timeout=30)
    assert classified.model_spec.signature_name == "classify"  # serving_default is a predict signature
    assert sorted(c.label for c in classified.result.classifications[0].classes) == ["Adelie", "Chinstrap", "Gentoo"]

    regress = regression_pb2.RegressionRequest(model_spec={"name": "penguin"})
    regress.input.CopyFrom(classify.input)
    error = failure(served.predictions.Regress, regress)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "Expected regression signature method_name to be tensorflow/serving/regress. Was: "
        f"tensorflow/serving/predict (signature 'serving_default'); version {served.version} of 'penguin' has: "
        "classify (classify), serving_default (predict), serving_encoded (predict), serving_raw (predict), transform_features (predict)"
    )


def save_classify_and_regress_model(path) -> None:
    """A SavedModel with TF Serving's classify (serving_default) and regress signatures on feature x.

    TF2's saved_model.save writes only predict signatures, so this one is built the TF1 way.
    """
    with tf.Graph().as_default():
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
        scores = tf.concat([tf.sigmoid(x), 1 - tf.sigmoid(x)], axis=1)
        classes = tf.tile(tf.constant([["yes", "no"]]), [tf.shape(x)[0], 1])
        with tf.compat.v1.Session() as session:
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                session,
                ["serve"],
                signature_def_map={
                    "serving_default": tf.compat.v1.saved_model.classification_signature_def(
                        serialized, classes, scores
                    ),
                    "regress": tf.compat.v1.saved_model.regression_signature_def(serialized, 2 * x),
                },
            )
            builder.save()


def test_classify_and_regress_answer_for_signatures_of_those_methods(tmp_path):
    save_classify_and_regress_model(tmp_path / "work" / "serving" / "toy" / "1")
    server = Server(tmp_path / "work", tmp_path / "logs")
    try:
        with grpc.insecure_channel(grpc_address(server)) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = classification_pb2.ClassificationRequest(model_spec={"name": "toy"})
            for x in (0.0, 2.0):
                request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
            classified = stub.Classify(request, timeout=30)
            assert classified.model_spec.signature_name == "serving_default"
            assert [[(c.label, round(c.score, 4)) for c in r.classes] for r in classified.result.classifications] == [
                [("yes", 0.5), ("no", 0.5)],
                [("yes", 0.8808), ("no", 0.1192)],
            ]
            regress = regression_pb2.RegressionRequest(model_spec={"name": "toy", "signature_name": "regress"})
            regress.input.CopyFrom(request.input)
            regressed = stub.Regress(regress, timeout=30)
            assert [r.value for r in regressed.result.regressions] == [0.0, 4.0]
            regress.model_spec.signature_name = "serving_default"
            error = failure(stub.Regress, regress)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error.details() == (
                "Expected regression signature method_name to be tensorflow/serving/regress. Was: "
                "tensorflow/serving/classify (signature 'serving_default'); version 1 of 'toy' has: "
                "regress (regress), serving_default (classify)"
            )
    finally:
        server.stop()


def test_grpc_requests_are_in_the_prediction_log_and_the_metrics(served, examples):
    request = raw_request(served, [instance(examples[1], FEATURES)])
    response, call = served.predictions.Predict.with_call(
        request, metadata=[("x-request-id", "grpc-client-id-1")], timeout=30
    )
    assert dict(call.initial_metadata())["x-request-id"] == "grpc-client-id-1"
    request.client_id = b"grpc-client-id-2"
    served.predictions.Predict(request, timeout=30)

    records = logged(served.log_dir, {"grpc-client-id-1", "grpc-client-id-2"})
    assert {"grpc-client-id-1", "grpc-client-id-2"} <= set(records)
    record = records["grpc-client-id-1"]
    assert record.log_metadata.model_spec.signature_name == "serving_raw"
    assert str(record.log_metadata.model_spec.version.value) == served.version
    assert tf.make_ndarray(record.predict_log.request.inputs["island"]).tolist() == [
        examples[1].features.feature["island"].bytes_list.value[0]
    ]
    np.testing.assert_array_equal(
        tf.make_ndarray(record.predict_log.response.outputs["probabilities"]),
        tf.make_ndarray(response.outputs["probabilities"]),
    )

    scraped = served.client.get("/monitoring/prometheus/metrics").text
    counted = re.findall(r'keel_serving_requests_total\{([^}]*api="grpc"[^}]*)\} (\S+)', scraped)
    assert any('status="OK"' in labels and float(n) >= 2 for labels, n in counted), scraped[-2000:]
    assert any('status="NOT_FOUND"' in labels or 'status="INVALID_ARGUMENT"' in labels for labels, _ in counted)


def test_grpc_can_be_turned_off_and_a_taken_port_is_a_one_line_error(tmp_path, capsys):
    save_classify_and_regress_model(tmp_path / "work" / "serving" / "toy" / "1")
    server = Server(tmp_path / "work", tmp_path / "logs", "--grpc-port", "-1")
    try:
        assert "(gRPC off;" in server.ready_line
    finally:
        server.stop()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--workdir", str(tmp_path / "work"), "--port", "0", "--grpc-port", str(port)]) == 2
    assert f"--grpc-port: cannot listen on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err
