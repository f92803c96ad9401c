"""REST `:classify` / `:regress` and gRPC Classify / Regress on real servers of real pipeline models.

The penguin model (classification) and penguin_mass (regression) come from the session fixtures;
each gets one server for the module. Answers are checked against `:predict` on the same rows.
"""

import re
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

from serving_helpers import FEATURES, Server, eval_examples, grpc_address, instance, logged_requests, serving_copy

MASS_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]


def start(workdir, root) -> Server:
    server = Server(serving_copy(workdir, root / "work"), root / "logs")
    server.channel = grpc.insecure_channel(grpc_address(server))
    server.stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    return server


def stop(server: Server) -> None:
    server.channel.close()
    code, out = server.stop()
    assert code in (0, -15), out


@pytest.fixture(scope="module")
def penguin(penguin_runs, tmp_path_factory):
    server = start(penguin_runs.workdir, tmp_path_factory.mktemp("classify"))
    server.rows = [instance(e, FEATURES) for e in eval_examples(penguin_runs.workdir)]
    server.examples = eval_examples(penguin_runs.workdir)
    yield server
    stop(server)


@pytest.fixture(scope="module")
def mass(mass_run, tmp_path_factory):
    server = start(mass_run.workdir, tmp_path_factory.mktemp("regress"))
    server.examples = eval_examples(mass_run.workdir)
    server.rows = [instance(e, MASS_FEATURES) for e in server.examples]
    yield server
    stop(server)


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def classify(server: Server, body: dict, model: str = "penguin", **kwargs):
    return server.predict(body, f"/v1/models/{model}:classify", **kwargs)


def regress(server: Server, body: dict, model: str = "penguin_mass", **kwargs):
    return server.predict(body, f"/v1/models/{model}:regress", **kwargs)


def best(results: list) -> list[str]:
    return [max(pairs, key=lambda pair: pair[1])[0] for pairs in results]


def test_classify_gives_every_class_s_score_and_predict_s_best_class(penguin):
    assert any(v is None for r in penguin.rows for v in r.values()), "the eval split should have missing values"
    results = ok(classify(penguin, {"examples": penguin.rows}))["results"]
    predicted = ok(penguin.predict({"instances": penguin.rows}))["predictions"]
    assert len(results) == len(predicted) == len(penguin.rows)
    labels = [label for label, _ in results[0]]
    assert sorted(labels) == ["Adelie", "Chinstrap", "Gentoo"]
    for pairs, prediction in zip(results, predicted, strict=True):
        assert [label for label, _ in pairs] == labels
        np.testing.assert_allclose([score for _, score in pairs], prediction["probabilities"], rtol=1e-5, atol=1e-6)
    assert best(results) == [p["classes"] for p in predicted]

    version = ok(penguin.client.get("/v1/models/penguin"))["model_version_status"][0]["version"]
    pinned = classify(penguin, {"examples": penguin.rows[:2]}, f"penguin/versions/{version}")
    pinned = ok(pinned)["results"]
    assert [[label for label, _ in pairs] for pairs in pinned] == [labels, labels]
    # a batch of 2 and a batch of all rows may round the last float bit differently (seen on TFX 1.21)
    np.testing.assert_allclose(
        [[score for _, score in pairs] for pairs in pinned],
        [[score for _, score in pairs] for pairs in results[:2]],
        rtol=1e-5,
        atol=1e-6,
    )


def test_regress_gives_predict_s_predictions(mass):
    results = ok(regress(mass, {"examples": mass.rows}))["results"]
    predicted = ok(mass.predict({"instances": mass.rows}, "/v1/models/penguin_mass:predict"))["predictions"]
    assert len(results) == len(mass.rows) and all(isinstance(v, float) for v in results)
    np.testing.assert_allclose(results, predicted, rtol=1e-5)
    assert 2000 < np.mean(results) < 7000  # grams: a penguin's body mass


def test_context_fills_in_features_and_the_example_s_own_value_wins(penguin):
    complete = [r for r in penguin.rows if None not in r.values()]
    first = complete[0]
    other = next(r for r in complete if r["island"] != first["island"])
    rows = [first, other]
    expected = ok(classify(penguin, {"examples": rows}))["results"]
    context = {"island": first["island"], "sex": first["sex"], "bill_length_mm": 1000.0}
    # the first example takes island and sex from the context; the other keeps its own island; both
    # have their own bill length, which wins over the context's absurd one
    examples = [
        {k: v for k, v in first.items() if k not in ("island", "sex")},
        {k: v for k, v in other.items() if k != "sex" or v != first["sex"]},
    ]
    assert ok(classify(penguin, {"context": context, "examples": examples}))["results"] == expected


def test_the_wrong_method_is_a_400_naming_the_signatures_the_model_has(penguin, mass):
    response = regress(penguin, {"examples": penguin.rows[:1]}, "penguin")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith(
        "Expected regression signature method_name to be tensorflow/serving/regress. Was: tensorflow/serving/predict "
        "(signature 'serving_default'); version "
    ), error
    assert error.endswith(
        "has: classify (classify), serving_default (predict), serving_encoded (predict), serving_raw (predict), transform_features (predict)"
    ), error

    response = classify(mass, {"examples": mass.rows[:1]}, "penguin_mass")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("Expected classification signature method_name to be tensorflow/serving/classify. Was:")
    assert "regress (regress), serving_default (predict), serving_raw (predict)" in error, error

    named = classify(penguin, {"signature_name": "serving_raw", "examples": penguin.rows[:1]})
    assert named.status_code == 400
    assert "Was: tensorflow/serving/predict (signature 'serving_raw')" in named.json()["error"]


def test_a_value_that_does_not_fit_is_a_400_naming_the_feature(penguin):
    metadata = ok(penguin.client.get("/v1/models/penguin/metadata"))["metadata"]["signature_def"]["signature_def"]
    integers = [n for n, i in metadata["serving_raw"]["inputs"].items() if i["dtype"] == "DT_DOUBLE"]
    assert integers, "the penguins have integer columns (flipper length, body mass)"
    row = dict(penguin.rows[0])
    cases = [
        ({**row, "bill_length_mm": "long"}, "examples[1]: feature 'bill_length_mm': expected a number or null"),
        ({**row, integers[0]: 181.5}, f"examples[1]: feature '{integers[0]}': expected an integer (int64), got 181.5"),
        ({**row, "species": "Adelie"}, "examples[1]: unknown feature 'species'; the model takes: bill_depth_mm, "),
    ]
    for bad, message in cases:
        response = classify(penguin, {"examples": [row, bad]})
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(message), response.json()["error"]
        assert "\n" not in response.json()["error"]


def test_grpc_classify_and_regress_choose_keel_s_signatures_and_agree_with_rest(penguin, mass):
    request = classification_pb2.ClassificationRequest(model_spec={"name": "penguin"})
    request.input.example_list.examples.extend(penguin.examples[:5])
    response = penguin.stub.Classify(request, timeout=30)
    assert response.model_spec.signature_name == "classify"
    rest = ok(classify(penguin, {"examples": penguin.rows[:5]}))["results"]
    got = [[(c.label, c.score) for c in r.classes] for r in response.result.classifications]
    assert [[label for label, _ in pairs] for pairs in got] == [[label for label, _ in pairs] for pairs in rest]
    np.testing.assert_allclose([[s for _, s in p] for p in got], [[s for _, s in p] for p in rest], rtol=1e-5)

    regression = regression_pb2.RegressionRequest(model_spec={"name": "penguin_mass"})
    regression.input.example_list.examples.extend(mass.examples[:5])  # the label in them is not read
    response = mass.stub.Regress(regression, timeout=30)
    assert response.model_spec.signature_name == "regress"
    rest = ok(regress(mass, {"examples": mass.rows[:5]}))["results"]
    np.testing.assert_allclose([r.value for r in response.result.regressions], rest, rtol=1e-5)


def test_classify_is_logged_and_counted(penguin):
    response = classify(penguin, {"examples": penguin.rows[:2]}, headers={"X-Request-Id": "classify-log-1"})
    assert ok(response) and response.headers["x-request-id"] == "classify-log-1"
    deadline = time.monotonic() + 30
    while True:  # the log writer is a thread: wait for the record
        records = [r for r in logged_requests(penguin.log_dir) if r.predict_log.request.client_id == b"classify-log-1"]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(records) == 1 and records[0].log_metadata.model_spec.signature_name == "classify"
    assert list(records[0].predict_log.request.inputs) == ["inputs"]
    scraped = penguin.client.get("/monitoring/prometheus/metrics").text
    counted = re.findall(r'keel_serving_requests_total\{([^}]*signature="classify"[^}]*)\} (\S+)', scraped)
    assert any('api="rest"' in labels and 'status="OK"' in labels and float(n) >= 1 for labels, n in counted)
