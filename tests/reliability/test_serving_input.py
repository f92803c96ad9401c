"""Bad requests to a real `keel serve` on 127.0.0.1: a 4xx with a one-line `error`, and the server
keeps answering good requests (with nothing from the bad one in the request log)."""

import json

import pytest

from serving_helpers import FEATURES, Server, eval_examples, instance, logged_requests, serving_copy, wait_for_logged


@pytest.fixture(scope="module")
def server(penguin_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-bad-input")
    server = Server(serving_copy(penguin_runs.workdir, root / "work"), root / "logs")
    server.good = {"instances": [instance(eval_examples(penguin_runs.workdir)[0], FEATURES)]}
    server.answered = 0
    yield server
    code, out = server.stop()
    assert code in (0, -15), out


ROW = {
    "bill_length_mm": 40.0,
    "bill_depth_mm": 18.0,
    "flipper_length_mm": 190,
    "body_mass_g": 3800,
    "island": "Dream",
    "sex": "male",
}
TEN_MB = b'{"instances": [' + b" " * (10 << 20) + b"]}"


def with_value(feature: str, literal: str) -> bytes:
    """A row-form body whose `feature` is the JSON text `literal` (NaN, 1e400: what json= cannot send)."""
    return json.dumps({"instances": [{**ROW, feature: "@"}]}).replace('"@"', literal).encode()


def post(path="/v1/models/penguin:predict", **kwargs):
    return lambda s: s.client.post(path, **kwargs)


CASES = {
    "missing_feature": (post(json={"instances": [{"bill_length_mm": 40.0}]}), 400, "missing feature 'bill_depth_mm'"),
    "extra_feature": (post(json={"instances": [{**ROW, "beak": 1}]}), 400, "unknown feature 'beak'"),
    "wrong_dtype": (post(json={"instances": [{**ROW, "sex": 3}]}), 400, "feature 'sex': expected a string"),
    "text_for_a_number": (
        post(json={"inputs": {**{k: [v] for k, v in ROW.items()}, "body_mass_g": ["heavy"]}}),
        400,
        "feature 'body_mass_g': expected a number",
    ),
    "wrong_shape": (post(json={"instances": [{**ROW, "bill_length_mm": [40.0, 41.0]}]}), 400, "'bill_length_mm'"),
    "ragged_columns": (
        post(json={"inputs": {**{k: [v] for k, v in ROW.items()}, "island": ["Dream", "Biscoe"]}}),
        400,
        "every list in 'inputs' must have the same length",
    ),
    "instances_differ": (
        post(json={"instances": [ROW, {k: v for k, v in ROW.items() if k != "sex"}]}),
        400,
        "instances[1] lacks feature 'sex'",
    ),
    "both_forms": (post(json={"instances": [ROW], "inputs": {}}), 400, "exactly one of 'instances'"),
    "empty_instances": (post(json={"instances": []}), 400, "'instances' must be a non-empty list"),
    "not_an_object": (post(json=[ROW]), 400, "the body must be a JSON object"),
    "invalid_json": (post(content=b'{"instances": [{'), 400, "the body is not valid JSON"),
    "not_utf8": (post(content=b'{"instances": ["\xff"]}'), 400, "the body is not valid JSON"),
    "unknown_signature": (post(json={"signature_name": "nope", "instances": [ROW]}), 400, "signature 'nope' not found"),
    "ten_mb_body": (post(content=TEN_MB), 413, "the limit is 4194304 (--max-body-bytes)"),
    "json_bomb": (post(content=b"[" * 100_000), 400, "nests arrays and objects 100000 levels deep; the limit is 32"),
    "nan": (post(content=with_value("bill_length_mm", "NaN")), 400, "feature 'bill_length_mm': NaN is not a finite"),
    "overflowing_number": (
        post(content=with_value("body_mass_g", "1e400")),
        400,
        "feature 'body_mass_g': Infinity is not a finite number",
    ),
    "outside_float32": (
        post(content=with_value("bill_depth_mm", "3.5e38")),
        400,
        "feature 'bill_depth_mm': 3.5e+38 is outside the range of float32",
    ),
    "lone_surrogate": (post(content=with_value("sex", '"\\ud800"')), 400, "feature 'sex': '\\ud800' holds a lone"),
    "long_integer": (post(content=with_value("body_mass_g", "9" * 5000)), 400, "an integer has more than 4300 digits"),
    "unknown_model": (post("/v1/models/gull:predict", json={"instances": [ROW]}), 404, "model 'gull' is not served"),
    "unknown_version": (
        post("/v1/models/penguin/versions/7:predict", json={"instances": [ROW]}),
        404,
        "version '7' of 'penguin' is not being served",
    ),
    "version_not_a_number": (
        post("/v1/models/penguin/versions/latest:predict", json={"instances": [ROW]}),
        404,
        "version 'latest' is not a version number",
    ),
    "unknown_endpoint": (lambda s: s.client.get("/v2/models"), 404, "no such endpoint"),
    "bad_request_id": (
        post(json={"instances": [ROW]}, headers={"X-Request-Id": "x" * 200}),
        400,
        "X-Request-Id header must be at most 128 printable characters",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(server, case):
    send, status, fragment = CASES[case]
    response = send(server)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error and "\n" not in error and "Traceback" not in error, error
    good = server.client.post("/v1/models/penguin:predict", json=server.good)
    assert good.status_code == 200, good.text
    server.answered += 1
    # Only answered requests are logged: the bad ones left no record.
    assert len(wait_for_logged(server.log_dir, server.answered)) == server.answered
    assert len(logged_requests(server.log_dir)) == server.answered
