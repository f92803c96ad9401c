"""Generated predict bodies against a real `keel serve` on 127.0.0.1: never a 5xx, every 4xx a one-line
`{"error": ...}`, only answered requests logged, and a good request answered as before all of them.

Hypothesis draws the bodies with a fixed seed (derandomize), so every run sends the same ones:
well-formed requests with wrong, missing and extra features, wrong types, huge, tiny and non-finite
numbers, strings and b64 values, unknown signatures; arbitrary JSON; and raw bytes (cut-off JSON,
bombs nested past the depth limit, text that is not UTF-8).
"""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving_helpers import FEATURES, Server, eval_examples, instance, logged_requests, serving_copy, wait_for_logged

EXAMPLES = 1200  # per strategy below; three of them

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 3.4e38, 3.5e38, -1.7e308, 5e-324, 2**63, -(2**63) - 1, 10**300]),
)
TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["Dream", "Biscoe", "male", "", "\ud800", "\udfff", "[[[[[[", '"\\', "x" * 5000]),
)
B64 = st.one_of(
    st.binary(max_size=64).map(lambda b: {"b64": base64.b64encode(b).decode()}),
    st.sampled_from([{"b64": "%%%"}, {"b64": "é"}, {"b64": 3}, {"b64": "QQ=="}, {"b64": "QQ"}]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, B64)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=12,
)
NAMES = st.one_of(st.sampled_from(FEATURES), st.sampled_from(["b64", "examples", "species", "", "bill_length_MM"]))
SIGNATURES = st.sampled_from(
    ["serving_raw", "serving_default", "transform_features", "", "nope", "__saved_model_init_op"]
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), JSON)
PLAUSIBLE = st.one_of(st.none(), st.integers(0, 10_000), st.floats(-1e6, 1e6))
TEXT_FEATURES = ("island", "sex")


@st.composite
def requests(draw) -> dict:
    """Bodies close to valid ones: the six features, some missing, extra or wrongly typed."""
    features = list(FEATURES)  # all six, a third of the time with one missing or one too many
    if draw(st.integers(0, 2)) == 0:
        features.remove(draw(st.sampled_from(FEATURES)))
    elif draw(st.integers(0, 1)) == 0:
        features.append(draw(NAMES))
    rows = draw(st.integers(min_value=1, max_value=3))

    def value(name: str):
        kind = draw(st.integers(0, 29))
        if kind < 26:  # mostly plausible values, to reach past the first check
            return draw(st.sampled_from(["Dream", "Biscoe", None]) if name in TEXT_FEATURES else PLAUSIBLE)
        if kind < 29:
            return draw(st.one_of(st.none(), TEXT) if name in TEXT_FEATURES else st.one_of(st.none(), NUMBERS))
        return draw(VALUES)

    if draw(st.booleans()):
        body = {"instances": [{n: value(n) for n in features} for _ in range(rows)]}
        if draw(st.integers(0, 9)) == 0:
            body["instances"] = [draw(st.one_of(B64, SCALARS)) for _ in range(rows)]
    else:
        ragged = {draw(st.sampled_from(features))} if draw(st.integers(0, 9)) == 0 else set()
        body = {"inputs": {n: [value(n) for _ in range(rows + (n in ragged))] for n in features}}
        if draw(st.integers(0, 9)) == 0:
            body["inputs"] = draw(st.one_of(JSON, st.lists(B64, max_size=3)))
    if draw(st.integers(0, 2)) == 0:
        body["signature_name"] = draw(SIGNATURES if draw(st.integers(0, 4)) else JSON)
    if draw(st.integers(0, 9)) == 0:
        body[draw(TEXT)] = draw(JSON)
    if draw(st.integers(0, 9)) == 0:
        body.pop(draw(st.sampled_from(sorted(body))))
    return body


@st.composite
def raw_bodies(draw) -> bytes:
    """Bytes that are not a well-formed request: cut-off or spliced JSON, bombs, not UTF-8."""
    text = json.dumps(draw(requests()), allow_nan=True).encode()
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return text[: draw(st.integers(0, len(text)))]
    if kind == 1:
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.binary(max_size=16)) + text[at:]
    if kind == 2:
        depth = draw(st.integers(30, 40))
        return b'{"instances": [{"island": ' + b"[" * depth + b"1" + b"]" * depth + b"}]}"
    if kind == 3:
        return draw(st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"[" * 3000 + b'"' + b"]" * 3000]))
    if kind == 4:
        return draw(st.binary(max_size=64))
    return text.replace(b'"', draw(st.sampled_from([b"'", b'\\"', b"\xff", b'"\x00'])), 1)


@pytest.fixture(scope="module")
def server(penguin_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-fuzz")
    server = Server(serving_copy(penguin_runs.workdir, root / "work"), root / "logs")
    server.good = {"instances": [instance(e, FEATURES) for e in eval_examples(penguin_runs.workdir)[:3]]}
    server.counts = {"sent": 0, "2xx": 0, "4xx": 0, "5xx": 0}
    yield server
    code, out = server.stop()
    assert code in (0, -15), out
    assert "Traceback" not in server.err_file.read_text()


def check(server, body: bytes) -> None:
    """Sends `body`; a 2xx must carry predictions, anything else must be a 4xx with a one-line error."""
    response = server.client.post(
        "/v1/models/penguin:predict", content=body, headers={"Content-Type": "application/json"}
    )
    server.counts["sent"] += 1
    if response.status_code >= 500:
        server.counts["5xx"] += 1
    assert response.status_code < 500, (response.status_code, response.text[:300], body[:300])
    if response.status_code < 300:
        server.counts["2xx"] += 1
        assert set(response.json()) & {"predictions", "outputs"}, response.text[:300]
        return
    server.counts["4xx"] += 1
    answer = response.json()
    assert set(answer) == {"error"} and isinstance(answer["error"], str), response.text[:300]
    assert answer["error"] and "\n" not in answer["error"] and len(answer["error"]) < 1000, answer["error"][:300]


def test_a_good_request_is_answered_before_the_fuzzing(server):
    response = server.predict(server.good)
    assert response.status_code == 200, response.text
    server.before = response.json()


@FUZZ
@given(body=requests())
def test_near_valid_bodies_get_a_2xx_or_a_one_line_4xx(server, body):
    check(server, json.dumps(body, allow_nan=True).encode())


@FUZZ
@given(body=JSON)
def test_arbitrary_json_never_gets_a_5xx(server, body):
    check(server, json.dumps(body, allow_nan=True).encode())


@FUZZ
@given(body=raw_bodies())
def test_malformed_bytes_get_a_one_line_4xx(server, body):
    check(server, body)


def test_after_the_fuzzing_a_good_request_gets_the_same_answer_and_only_answers_were_logged(server):
    response = server.predict(server.good)
    assert response.status_code == 200 and response.json() == server.before, response.text
    counts = server.counts
    print(f"fuzzed bodies: {counts['sent']} sent, {counts['2xx']} 2xx, {counts['4xx']} 4xx, {counts['5xx']} 5xx")
    assert counts["sent"] >= EXAMPLES and counts["5xx"] == 0
    assert counts["2xx"] + counts["4xx"] == counts["sent"]
    answered = counts["2xx"] + 2
    assert len(wait_for_logged(server.log_dir, answered)) == answered
    assert len(logged_requests(server.log_dir)) == answered
