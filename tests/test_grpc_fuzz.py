"""Generated gRPC requests against a real `keel serve`, sent with TF Serving's own stubs: no answer is
INTERNAL or UNKNOWN, every refusal has a TF Serving status code and a one-line message, the server
stays up, and a good Predict gets the same answer after all of them as before.

Hypothesis draws the requests with a fixed seed (derandomize; the served version and eval rows are
the fixture's, so two workdirs get slightly different requests):
PredictRequests with model_spec variations (names, versions, labels, signatures) and input maps of
TensorProtos, either close to valid ones (wrong dtypes, shapes and batch sizes, NaN and infinity,
strings for numbers) or built field by field (any dtype enum, shapes declaring huge or negative
dimensions with no content, values in fields that do not match the dtype); Classify and Regress
requests with tf.Example-like inputs; and GetModelMetadata and GetModelStatus requests.
"""

import collections

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving_helpers import FEATURES, eval_examples, grpc_served, instance

REFUSALS = {  # the codes TF Serving answers a bad request with; INTERNAL and UNKNOWN are bugs
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
}


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "penguin", "\x00", "é", "x" * 300]))
NAMES = st.one_of(st.sampled_from(["penguin", "penguin", "penguin", "", "nope", "PENGUIN"]), TEXT)
LABELS = st.one_of(st.sampled_from(["production", "candidate", "archived", "staging", "nope"]), TEXT)
SIGNATURES = st.one_of(
    st.sampled_from(["", "serving_raw", "serving_default", "classify", "transform_features", "__saved_model_init_op"]),
    TEXT,
)
FLOATS = st.one_of(
    st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf"), -float("inf"), 3.4e38, 1e308, 5e-324])
)
BIG_DIMS = st.sampled_from([2**22 + 1, 2**31, 2**40, 2**62, 2**63 - 1])
DIMS = st.lists(st.one_of(st.integers(-3, 4), BIG_DIMS), max_size=4)
DTYPES = st.one_of(st.sampled_from([0, 1, 2, 3, 7, 9, 10, 14, 19, 20, 21, 101, 107]), st.integers(0, 2**31 - 1))
INT32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def model_specs(draw) -> model_pb2.ModelSpec:
    """Mostly penguin's served version and a signature it has, so that most requests reach the inputs."""
    spec = model_pb2.ModelSpec(name="penguin" if draw(st.integers(0, 9)) else draw(NAMES))
    choice = draw(st.integers(0, 9))
    if choice == 8:
        spec.version.value = draw(st.one_of(st.sampled_from(VERSIONS), st.integers(-(2**63), 2**63 - 1)))
    elif choice == 9:
        spec.version_label = draw(LABELS)
    if draw(st.integers(0, 4)) == 0:
        spec.signature_name = draw(SIGNATURES)
    return spec


VERSIONS = []  # the served version, and below serving_raw's input dtypes, filled in by the fixture
INPUT_DTYPES: dict[str, tf.DType] = {}
EVAL_EXAMPLES: list[tf.train.Example] = []


@st.composite
def plausible_tensors(draw, name: str, rows: int) -> tensor_pb2.TensorProto:
    """A column of `rows` values of about the right kind, at times of the wrong dtype, shape or length."""
    dtype = INPUT_DTYPES.get(name, tf.float64)
    kind = draw(st.integers(0, 59))
    if kind < 55:  # finite numbers or NaN mostly, at times infinity and numbers past float32
        numbers = FLOATS if kind >= 50 else st.one_of(st.floats(-1e4, 1e4), st.just(float("nan")))
        values = (
            np.array([draw(st.sampled_from([b"Dream", b"Biscoe", b""])) for _ in range(rows)], dtype=object)
            if dtype == tf.string
            else np.array([draw(numbers) for _ in range(rows)], dtype=np.float64)
        )
        with np.errstate(over="ignore"):  # 1e308 as float32 is infinity, which is what it should send
            values = values.astype(dtype.as_numpy_dtype)
    elif kind == 55:
        values = np.array([draw(st.binary(max_size=8)) for _ in range(rows)], dtype=object)
    elif kind == 56:
        dtype = draw(st.sampled_from([np.float16, np.float32, np.int8, np.int32, np.int64, np.uint64, np.bool_]))
        values = np.array([draw(st.integers(0, 100)) for _ in range(rows)]).astype(dtype)
    elif kind == 57:
        values = np.array([draw(FLOATS) for _ in range(rows + draw(st.integers(-1, 2)))])
    else:
        values = np.zeros([rows] + draw(st.lists(st.integers(0, 2), max_size=2)))
    proto = tf.make_tensor_proto(values)
    if draw(st.integers(0, 59)) == 0:  # the shape says more (or less) than the values hold
        proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in draw(DIMS)]))
    return proto


@st.composite
def raw_tensors(draw) -> tensor_pb2.TensorProto:
    """A TensorProto built field by field: any dtype enum, any declared shape, values in any field."""
    proto = tensor_pb2.TensorProto(dtype=draw(DTYPES))
    proto.tensor_shape.unknown_rank = draw(st.integers(0, 9)) == 0
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in draw(DIMS))
    fields = {
        "float_val": FLOATS,
        "double_val": FLOATS,
        "int_val": INT32,
        "int64_val": st.integers(-(2**63), 2**63 - 1),
        "string_val": st.binary(max_size=8),
        "bool_val": st.booleans(),
        "half_val": st.integers(0, 2**16 - 1),
        "uint64_val": st.integers(0, 2**64 - 1),
    }
    for field in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        getattr(proto, field).extend(draw(st.lists(fields[field], max_size=5)))
    if draw(st.integers(0, 3)) == 0:
        proto.tensor_content = draw(st.binary(max_size=64))
    return proto


@st.composite
def predict_requests(draw) -> predict_pb2.PredictRequest:
    """PredictRequests close to a good serving_raw request, with features missing, extra or ill-typed."""
    request = predict_pb2.PredictRequest(model_spec=draw(model_specs()))
    names = list(FEATURES)
    if draw(st.integers(0, 9)) == 0:
        names.remove(draw(st.sampled_from(FEATURES)))
    elif draw(st.integers(0, 9)) == 0:
        names.append(draw(st.one_of(st.sampled_from(["examples", "species", "inputs"]), TEXT)))
    rows = draw(st.integers(0, 3)) or draw(st.integers(0, 3))  # no rows at all one time in 16
    for name in names:
        request.inputs[name].CopyFrom(
            draw(raw_tensors() if draw(st.integers(0, 59)) == 0 else plausible_tensors(name, rows))
        )
    if draw(st.integers(0, 9)) == 0:
        request.output_filter.extend(draw(st.lists(st.one_of(st.sampled_from(["probabilities", "classes"]), TEXT))))
    return request


@st.composite
def raw_predict_requests(draw) -> predict_pb2.PredictRequest:
    """PredictRequests of TensorProtos built field by field, under the feature names or any names."""
    request = predict_pb2.PredictRequest(model_spec=draw(model_specs()))
    names = (
        FEATURES
        if draw(st.booleans())
        else draw(st.lists(st.one_of(st.sampled_from(FEATURES + ["examples"]), TEXT), max_size=7, unique=True))
    )
    for name in names:
        request.inputs[name].CopyFrom(draw(raw_tensors()))
    return request


@st.composite
def examples(draw) -> tf.train.Example:
    """Mostly an eval tf.Example with a feature or two removed or replaced, else one of any features."""
    if draw(st.integers(0, 2)):
        example = tf.train.Example()
        example.CopyFrom(draw(st.sampled_from(EVAL_EXAMPLES)))
        names = draw(st.lists(st.sampled_from(FEATURES), max_size=2, unique=True)) if draw(st.booleans()) else []
    else:
        example = tf.train.Example()
        names = draw(st.lists(st.one_of(st.sampled_from(FEATURES), TEXT), max_size=7, unique=True))
    for name in names:
        feature = example.features.feature[name]
        feature.Clear()
        kind = draw(st.integers(0, 3))
        if kind == 0:
            feature.bytes_list.value.extend(draw(st.lists(st.binary(max_size=8), max_size=3)))
        elif kind == 1:
            feature.float_list.value.extend(draw(st.lists(FLOATS, max_size=3)))
        elif kind == 2:
            feature.int64_list.value.extend(draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)))
    return example


@st.composite
def example_inputs(draw) -> input_pb2.Input:
    kind = draw(st.integers(0, 4))
    found = input_pb2.Input()
    if kind < 3:
        found.example_list.examples.extend(draw(st.lists(examples(), min_size=kind > 0, max_size=4)))
    elif kind == 3:
        found.example_list_with_context.context.CopyFrom(draw(examples()))
        found.example_list_with_context.examples.extend(draw(st.lists(examples(), max_size=3)))
    return found  # kind 4: no input at all


@pytest.fixture(scope="module")
def served(penguin_runs, tmp_path_factory):
    server = grpc_served(penguin_runs.workdir, tmp_path_factory.mktemp("grpc-fuzz"))
    VERSIONS[:] = [int(server.version)]
    INPUT_DTYPES.update(input_dtypes(server))
    EVAL_EXAMPLES[:] = eval_examples(penguin_runs.workdir)[:20]
    server.good = good_request([instance(e, FEATURES) for e in EVAL_EXAMPLES[:3]])
    server.counts = collections.Counter()
    yield server
    server.channel.close()
    code, out = server.stop()
    assert code in (0, -15), out
    assert "Traceback" not in server.err_file.read_text()


def input_dtypes(served) -> dict[str, tf.DType]:
    """serving_raw's input dtypes, as GetModelMetadata gives them."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        metadata_field=["signature_def"], model_spec={"name": "penguin"}
    )
    found = get_model_metadata_pb2.SignatureDefMap()
    assert served.predictions.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(found)
    inputs = found.signature_def["serving_raw"].inputs
    return {name: tf.dtypes.as_dtype(inputs[name].dtype) for name in FEATURES}


def good_request(rows: list[dict]) -> predict_pb2.PredictRequest:
    """A serving_raw PredictRequest of `rows`, in the dtypes the signature takes."""
    request = predict_pb2.PredictRequest(model_spec={"name": "penguin", "signature_name": "serving_raw"})
    for name in FEATURES:
        values = [r[name] for r in rows]
        if INPUT_DTYPES[name] == tf.string:
            column = np.array([(v or "").encode() for v in values], dtype=object)
        else:
            column = np.array([np.nan if v is None else v for v in values], dtype=INPUT_DTYPES[name].as_numpy_dtype)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(column))
    return request


def check(served, method: str, request) -> None:
    """Calls `method`; an answer is fine, a refusal must have a TF Serving code and a one-line message."""
    call = getattr(served.models if method == "GetModelStatus" else served.predictions, method)
    try:
        call(request, timeout=30)
        served.counts[method, "OK"] += 1
    except grpc.RpcError as e:
        served.counts[method, e.code().name] += 1
        assert e.code() in REFUSALS, (e.code(), e.details(), str(request)[:500])
        details = e.details() or ""
        assert details and "\n" not in details and len(details) < 1000, (e.code(), details[:500])
    assert served.process.poll() is None, served.err_file.read_text()[-3000:]


def test_a_good_predict_is_answered_before_the_fuzzing(served):
    served.before = served.predictions.Predict(served.good, timeout=30)
    assert set(served.before.outputs) >= {"probabilities"}


@fuzz(600)
@given(request=predict_requests())
def test_near_valid_predicts_are_answered_or_refused_with_a_tf_serving_code(served, request):
    check(served, "Predict", request)


@fuzz(400)
@given(request=raw_predict_requests())
def test_predicts_of_arbitrary_tensor_protos_are_never_internal(served, request):
    check(served, "Predict", request)


@fuzz(400)
@given(spec=model_specs(), examples=example_inputs(), regress=st.booleans())
def test_classify_and_regress_of_arbitrary_examples_are_never_internal(served, spec, examples, regress):
    request = (regression_pb2.RegressionRequest if regress else classification_pb2.ClassificationRequest)(
        model_spec=spec, input=examples
    )
    check(served, "Regress" if regress else "Classify", request)


@fuzz(200)
@given(
    spec=model_specs(),
    fields=st.lists(st.sampled_from(["signature_def"] * 4 + ["", "nope"]), max_size=3),
    status=st.booleans(),
)
def test_metadata_and_status_requests_are_never_internal(served, spec, fields, status):
    if status:
        check(served, "GetModelStatus", get_model_status_pb2.GetModelStatusRequest(model_spec=spec))
    else:
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=fields)
        check(served, "GetModelMetadata", request)


def test_after_the_fuzzing_the_server_is_up_and_a_good_predict_gets_the_same_answer(served):
    assert served.process.poll() is None
    assert served.predictions.Predict(served.good, timeout=30) == served.before
    counts = served.counts
    by_code = collections.Counter()
    for (_, code), n in counts.items():
        by_code[code] += n
    print("fuzzed gRPC requests:", sum(counts.values()), dict(sorted(by_code.items())))
    for method in ("Predict", "Classify", "Regress", "GetModelMetadata", "GetModelStatus"):
        print(f"  {method}:", {code: n for (m, code), n in sorted(counts.items()) if m == method})
    assert sum(counts.values()) >= 1500
    assert not set(by_code) - {"OK"} - {c.name for c in REFUSALS}
