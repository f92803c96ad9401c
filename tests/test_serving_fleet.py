"""`keel serve` with several models, registry stages as version labels, and Prometheus metrics, over real HTTP."""

import shutil
import threading
import time

import grpc
import httpx
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keel.cli import main
from keel.serving.versions import labels

from helpers import keel
from serving_helpers import FEATURES, Server, eval_examples, grpc_address, instance, serving_copy, wait_for_logged


@pytest.fixture(scope="module")
def fleet(penguin_runs, tmp_path_factory):
    """One server for two workdirs: the penguin workdir (with its registry) and one holding `gentoo`,
    a copy of penguin's newest version under another name (no registry, so no labels)."""
    root = tmp_path_factory.mktemp("fleet")
    penguin = serving_copy(penguin_runs.workdir, root / "penguin-work")
    versions = sorted((penguin / "serving" / "penguin").iterdir(), key=lambda p: int(p.name))
    gentoo = root / "gentoo-work"
    shutil.copytree(versions[-1], gentoo / "serving" / "gentoo" / "1")
    server = Server(penguin, root / "logs", "--workdir", str(gentoo))
    server.penguin, server.gentoo = penguin, gentoo
    server.versions = [p.name for p in versions]
    server.example = eval_examples(penguin_runs.workdir)[0]
    yield server
    code, out = server.stop()
    assert code in (0, -15), out
    assert "stopped: answered" in out


@pytest.fixture(scope="module")
def row(penguin_runs) -> dict:
    return {"instances": [instance(eval_examples(penguin_runs.workdir)[0], FEATURES)]}


def version_of(server, path: str) -> str:
    response = server.client.get(path)
    assert response.status_code == 200, response.text
    return response.json()["model_version_status"][0]["version"]


def test_two_workdirs_serve_two_models_at_once_each_with_its_own_request_log(fleet, row):
    assert "penguin version" in fleet.ready_line and "gentoo version 1" in fleet.ready_line
    assert version_of(fleet, "/v1/models/penguin") == fleet.versions[-1]
    assert version_of(fleet, "/v1/models/gentoo") == "1"
    penguin = fleet.predict(row)
    gentoo = fleet.predict(row, path="/v1/models/gentoo:predict")
    assert penguin.status_code == 200 and gentoo.status_code == 200, (penguin.text, gentoo.text)
    assert penguin.json() == gentoo.json()  # the same SavedModel under two names
    assert len(wait_for_logged(fleet.log_dir / "gentoo", 1)) >= 1
    assert len(wait_for_logged(fleet.log_dir / "penguin", 1)) >= 1
    missing = fleet.predict(row, path="/v1/models/adelie:predict")
    assert missing.status_code == 404
    assert missing.json()["error"] == "model 'adelie' is not served here; this server serves: gentoo, penguin"


def test_the_same_model_name_from_two_workdirs_is_one_line_error(fleet, capsys):
    assert main(["serve", "--workdir", str(fleet.penguin), "--workdir", str(fleet.penguin), "--port", "0"]) == 2
    root = fleet.penguin / "serving" / "penguin"
    assert capsys.readouterr().err.splitlines() == [
        f"error: model 'penguin' would be served twice, from {root} and {root}; each served model needs its own name"
    ]


def test_labels_follow_promotions_without_a_restart(fleet, row):
    oldest, newest = fleet.versions[0], fleet.versions[-1]
    assert version_of(fleet, "/v1/models/penguin/labels/candidate") == newest
    no_label = fleet.client.get("/v1/models/penguin/labels/production")
    assert no_label.status_code == 404
    assert (
        no_label.json()["error"]
        == f"model 'penguin' has no label 'production'; its labels: candidate (version {newest})"
    )

    promoted = keel("models", "promote", oldest, "--workdir", fleet.penguin)
    assert promoted.returncode == 0, promoted.stderr
    deadline = time.monotonic() + 60
    while fleet.client.get("/v1/models/penguin/labels/production").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert version_of(fleet, "/v1/models/penguin/labels/production") == oldest
    assert fleet.predict(row, path="/v1/models/penguin/labels/production:predict").status_code == 200
    metadata = fleet.client.get("/v1/models/penguin/labels/production/metadata").json()
    assert metadata["model_spec"]["version"] == oldest

    # Promoting back moves the label under traffic: every request is answered, by the old version and then the new.
    failures, answered, stop = [], [], threading.Event()

    def traffic():
        with httpx.Client(base_url=fleet.url, timeout=30) as client:
            while not stop.is_set():
                response = client.get("/v1/models/penguin/labels/production")
                if response.status_code == 200:
                    answered.append(response.json()["model_version_status"][0]["version"])
                else:
                    failures.append(response)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        promoted = keel("models", "promote", newest, "--workdir", fleet.penguin)
        assert promoted.returncode == 0, promoted.stderr
        deadline = time.monotonic() + 60
        while (not answered or answered[-1] != newest) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        sender.join(60)
    assert not failures, failures[0].text
    assert answered[0] == oldest and answered[-1] == newest
    assert fleet.predict(row, path="/v1/models/penguin/labels/production:predict").status_code == 200

    archived = fleet.client.get("/v1/models/penguin/labels/archived")
    assert archived.status_code == 404
    assert archived.json()["error"] == (
        f"label 'archived' of 'penguin' names version {oldest}, which is not loaded; "
        f"the loaded version is {newest} (the production version, else the newest)"
    )


def wait_for_label(server, label: str, version: str, seconds: float = 60) -> None:
    """Polls until `label` answers `version` over REST (the server reads the registry every 0.5 s)."""
    path, deadline = f"/v1/models/penguin/labels/{label}", time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = server.client.get(path)
        if response.status_code == 200 and response.json()["model_version_status"][0]["version"] == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not move to version {version}: {response.status_code} {response.text}")


def test_a_rollback_moves_the_production_label_back_without_a_restart(fleet, row):
    oldest, newest = fleet.versions[0], fleet.versions[-1]
    for version in (oldest, newest):  # production is newest, promoted after oldest
        promoted = keel("models", "promote", version, "--workdir", fleet.penguin)
        assert promoted.returncode == 0, promoted.stderr
    wait_for_label(fleet, "production", newest)

    rolled = keel("models", "rollback", "--workdir", fleet.penguin)
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.startswith(f"rolled back: version {oldest} "), rolled.stdout
    wait_for_label(fleet, "production", oldest)
    answered = fleet.predict(row, path="/v1/models/penguin/labels/production:predict")
    assert answered.status_code == 200, answered.text

    spec = {"name": "penguin", "version_label": "production"}
    with grpc.insecure_channel(grpc_address(fleet)) as channel:
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec=spec), timeout=30
        )
        assert [str(s.version) for s in status.model_version_status] == [oldest]
        request = predict_pb2.PredictRequest(model_spec={**spec, "signature_name": "serving_default"})
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([fleet.example.SerializeToString()]))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert response.model_spec.version.value == int(oldest)
    assert response.model_spec.signature_name == "serving_default"


def test_an_unknown_label_is_404_naming_the_labels_that_exist(fleet, row):
    response = fleet.predict(row, path="/v1/models/penguin/labels/stable:predict")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error.startswith("model 'penguin' has no label 'stable'; its labels: ")
    assert "production (version " in error
    gentoo = fleet.client.get("/v1/models/gentoo/labels/production")
    assert gentoo.status_code == 404
    assert gentoo.json()["error"] == (
        "model 'gentoo' has no label 'production'; its labels: none (a label is a registry stage: keel models promote)"
    )


def scrape(server) -> dict:
    response = server.client.get("/monitoring/prometheus/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_the_metrics_endpoint_counts_requests_errors_batches_and_logged_records(fleet, row):
    ok = (
        "keel_serving_requests_total",
        (("api", "rest"), ("model", "gentoo"), ("signature", "serving_raw"), ("status", "OK"), ("version", "1")),
    )
    bad = (
        "keel_serving_request_errors_total",
        (("api", "rest"), ("model", "gentoo"), ("signature", ""), ("status", "INVALID_ARGUMENT"), ("version", "1")),
    )
    before = scrape(fleet)
    assert fleet.predict(row, path="/v1/models/gentoo:predict").status_code == 200
    assert fleet.predict({"instances": 3}, path="/v1/models/gentoo:predict").status_code == 400
    after = scrape(fleet)
    assert after[ok] == before.get(ok, 0) + 1
    assert after[bad] == before.get(bad, 0) + 1
    latency = ("keel_serving_request_latency_seconds_count", ok[1][:3] + ok[1][4:])
    assert after[latency] == before.get(latency, 0) + 1
    batches = (
        "keel_serving_batch_size_rows_count",
        (("model", "gentoo"), ("signature", "serving_raw"), ("version", "1")),
    )
    assert after[batches] >= before.get(batches, 0) + 1
    assert after[("keel_serving_request_log_queued_total", (("model", "gentoo"),))] >= 2
    assert ("keel_serving_request_log_written_total", (("model", "penguin"),)) in after


def model_config(path, entries: str):
    path.write_text(f"model_config_list {{\n{entries}\n}}\n")
    return path


def test_a_model_config_file_serves_each_model_under_its_name(fleet, tmp_path, row):
    config = model_config(
        tmp_path / "models.config",
        f'  config {{ name: "adelie" base_path: "{fleet.penguin / "serving" / "penguin"}" model_platform: "tensorflow" }}\n'
        f'  config {{ name: "gentoo" base_path: "{fleet.gentoo / "serving" / "gentoo"}" model_platform: "tensorflow" }}',
    )
    server = Server(None, tmp_path / "logs", "--model-config-file", str(config))
    try:
        assert version_of(server, "/v1/models/gentoo") == "1"
        assert server.predict(row, path="/v1/models/adelie:predict").status_code == 200
        # adelie's base_path is a workdir's serving/penguin, so the registry's stages label it
        served = version_of(server, "/v1/models/adelie")
        label = next(k for k, v in labels(fleet.penguin, "penguin").items() if v == served)
        assert version_of(server, f"/v1/models/adelie/labels/{label}") == served
        assert len(wait_for_logged(tmp_path / "logs" / "adelie", 1)) == 1
    finally:
        code, out = server.stop()
    assert code in (0, -15), out


@pytest.mark.parametrize(
    "text, error",
    [
        ("model_config_list { config { name: 'x' base_pth: '/y' } }", "not a TF Serving model config: 1:"),
        ("model_config_list { }", "no models; expected model_config_list { config { name base_path } }"),
        ("model_config_list { config { name: 'x' } }", "every config needs a name and a base_path; got 'name: \"x\"'"),
        (
            "model_config_list { config { name: 'x' base_path: '/nonexistent/x' } }",
            "model 'x': base_path /nonexistent/x is not a directory",
        ),
        (
            "model_config_list { config { name: 'x' base_path: '/' model_platform: 'pytorch' } }",
            "model 'x': model_platform 'pytorch'; only tensorflow is served",
        ),
    ],
)
def test_a_bad_model_config_file_is_one_line_naming_the_file(tmp_path, capsys, text, error):
    config = tmp_path / "models.config"
    config.write_text(text)
    assert main(["serve", "--model-config-file", str(config), "--port", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {error}"), lines


def test_a_missing_model_config_file_or_one_given_with_workdirs_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.config"
    assert main(["serve", "--model-config-file", str(missing), "--port", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --model-config-file {missing}: cannot read it: No such file or directory"
    ]
    assert main(["serve", "--model-config-file", str(missing), "--workdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --model-config-file names every model to serve; drop --workdir and --spec"
    ]
