"""`keel serve` as a real subprocess on 127.0.0.1: TF Serving's REST API, errors, request logs, hot reload."""

import base64
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
import tensorflow as tf

from keel.cli import main

from serving_helpers import FEATURES, Server, eval_examples, instance, serving_copy, wait_for_logged


@pytest.fixture(scope="module")
def served(penguin_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    workdir = serving_copy(penguin_runs.workdir, root / "work")
    server = Server(workdir, root / "logs")
    server.workdir = workdir
    server.sent_ids = []
    yield server
    code, out = server.stop()
    assert code in (0, -15), out  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "stopped: answered" in out


@pytest.fixture(scope="module")
def examples(penguin_runs):
    return eval_examples(penguin_runs.workdir)


def served_version(server) -> str:
    return server.client.get("/v1/models/penguin").json()["model_version_status"][0]["version"]


def saved_model_outputs(server, rows: list[dict]) -> dict:
    model = tf.saved_model.load(str(server.workdir / "serving" / "penguin" / served_version(server)))
    signature = model.signatures["serving_raw"]
    inputs = signature.structured_input_signature[1]
    columns = {}
    for name, spec in inputs.items():
        values = [r[name] for r in rows]
        if spec.dtype == tf.string:
            columns[name] = tf.constant([v or "" for v in values])
        else:
            columns[name] = tf.constant([np.nan if v is None else v for v in values], dtype=spec.dtype)
    outputs = signature(**columns)
    return {
        "probabilities": outputs["probabilities"].numpy(),
        "classes": [c.decode() for c in outputs["classes"].numpy()],
    }


def ok(server, response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    server.sent_ids.append(response.headers["x-request-id"])
    return response.json()


def test_status_and_metadata_speak_tf_serving(served):
    status = served.client.get("/v1/models/penguin").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert status["model_version_status"][0]["status"]["error_code"] == "OK"
    version = status["model_version_status"][0]["version"]
    by_version = served.client.get(f"/v1/models/penguin/versions/{version}").json()
    assert by_version["model_version_status"][0]["version"] == version
    meta = served.client.get("/v1/models/penguin/metadata").json()
    assert meta["model_spec"] == {"name": "penguin", "signature_name": "", "version": version}
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures["serving_raw"]["inputs"]) == sorted(FEATURES)
    assert signatures["serving_default"]["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert signatures["serving_raw"]["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"] == "3"


def test_row_and_columnar_forms_return_the_saved_models_predictions(served, examples):
    rows = [instance(e, FEATURES) for e in examples]
    assert any(v is None for r in rows for v in r.values()), "the eval split should include missing values"
    expected = saved_model_outputs(served, rows)

    predictions = ok(served, served.predict({"instances": rows}))["predictions"]
    assert [p["classes"] for p in predictions] == expected["classes"]
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected["probabilities"], atol=1e-6)

    columns = {name: [r[name] for r in rows] for name in FEATURES}
    outputs = ok(served, served.predict({"inputs": columns}))["outputs"]
    assert outputs["classes"] == expected["classes"]
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-6)

    b64 = [{"examples": {"b64": base64.b64encode(e.SerializeToString()).decode()}} for e in examples]
    by_example = ok(served, served.predict({"signature_name": "serving_default", "instances": b64}))["predictions"]
    assert [p["classes"] for p in by_example] == expected["classes"]

    # TF Serving's bare binary form: no signature_name, {"b64": ...} is the one input of serving_default.
    bare = [{"b64": base64.b64encode(e.SerializeToString()).decode()} for e in examples]
    by_rows = ok(served, served.predict({"instances": bare}))["predictions"]
    by_columns = ok(served, served.predict({"inputs": bare}))["outputs"]
    assert [p["classes"] for p in by_rows] == by_columns["classes"] == expected["classes"]
    np.testing.assert_allclose([p["probabilities"] for p in by_rows], expected["probabilities"], atol=1e-6)


def test_concurrent_single_row_requests_each_get_their_own_answer(served, examples):
    rows = [instance(e, FEATURES) for e in examples]
    expected = saved_model_outputs(served, rows)["classes"]
    answers = [None] * len(rows)

    def send(i):
        with httpx.Client(base_url=served.url, timeout=30) as client:
            answers[i] = client.post("/v1/models/penguin:predict", json={"instances": [rows[i]]})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [ok(served, a)["predictions"][0]["classes"] for a in answers] == expected


def test_every_answered_request_is_in_the_prediction_logs(served, examples):
    request_id = "client-chosen-id-1"
    answer = served.predict({"instances": [instance(examples[1], FEATURES)]}, headers={"X-Request-Id": request_id})
    assert answer.headers["x-request-id"] == request_id
    ok(served, answer)
    records = wait_for_logged(served.log_dir, len(served.sent_ids))
    logged = [r.predict_log.request.client_id.decode() for r in records]
    assert sorted(logged) == sorted(served.sent_ids)
    last = next(r for r in records if r.predict_log.request.client_id.decode() == request_id)
    assert last.log_metadata.model_spec.name == "penguin"
    assert str(last.log_metadata.model_spec.version.value) == served_version(served)
    assert abs(last.log_metadata.timestamp_secs - time.time()) < 120
    assert tf.make_ndarray(last.predict_log.request.inputs["island"]).tolist() == [
        examples[1].features.feature["island"].bytes_list.value[0]
    ]
    assert last.predict_log.response.outputs["probabilities"].tensor_shape.dim[1].size == 3


def test_a_new_push_is_picked_up_without_dropping_requests(served, examples):
    old = served_version(served)
    new = str(int(old) + 1)
    good = {"instances": [instance(examples[0], FEATURES)]}
    failures, answered, stop = [], [], threading.Event()

    def traffic():
        with httpx.Client(base_url=served.url, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/v1/models/penguin:predict", json=good)
                (answered if response.status_code == 200 else failures).append(response)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        shutil.copytree(served.workdir / "serving" / "penguin" / old, served.workdir / "serving" / "penguin" / new)
        deadline = time.monotonic() + 60
        while served_version(served) != new and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        sender.join(60)
    assert served_version(served) == new
    assert not failures, failures[0].text
    assert len(answered) > 0
    served.sent_ids += [r.headers["x-request-id"] for r in answered]
    assert ok(served, served.predict(good, path=f"/v1/models/penguin/versions/{new}:predict"))
    assert served.predict(good, path=f"/v1/models/penguin/versions/{old}:predict").status_code == 404
    assert f"now serving penguin version {new} (was {old})" in served.output()


def test_a_push_that_fails_to_load_is_reported_and_the_current_version_keeps_serving(served, examples):
    current = served_version(served)
    broken = served.workdir / "serving" / "penguin" / str(int(current) + 1)
    shutil.copytree(served.workdir / "serving" / "penguin" / current, broken)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    deadline = time.monotonic() + 60
    while (
        len(served.client.get("/v1/models/penguin").json()["model_version_status"]) < 2 and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    serving, failed = served.client.get("/v1/models/penguin").json()["model_version_status"]
    assert serving["version"] == current and serving["state"] == "AVAILABLE"
    assert failed["version"] == broken.name and failed["state"] == "END" and failed["status"]["error_message"] != ""
    ok(served, served.predict({"instances": [instance(examples[0], FEATURES)]}))
    assert f"could not load version {broken.name} of penguin; still serving {current}" in served.err_file.read_text()


def test_the_registrys_production_version_is_served(served, examples):
    from keel.registry import stages as registry

    oldest = sorted(p.name for p in (served.workdir / "serving" / "penguin").iterdir())[0]
    assert served_version(served) != oldest
    registry.promote(served.workdir, oldest)
    deadline = time.monotonic() + 60
    while served_version(served) != oldest and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served_version(served) == oldest
    ok(served, served.predict({"instances": [instance(examples[0], FEATURES)]}))


def test_serve_reports_a_workdir_without_pushed_models_in_one_line(tmp_path, capsys):
    assert main(["serve", "--workdir", str(tmp_path), "--port", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path}: no serving/ directory (pass --workdir, the directory `keel run` pushed to)"
    ]
    assert main(["serve", "--workdir", str(tmp_path), "--max-batch-size", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --max-batch-size: got 0; expected at least 1"]
