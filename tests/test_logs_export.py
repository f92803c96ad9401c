"""`keel logs export`: requests logged by a real `keel serve`, in every request form, joined with their
labels into a new span, which `keel run --span 2` trains on and whose origin `keel lineage` names."""

import base64
import csv
import json
from pathlib import Path

import pytest
import tensorflow as tf

from keel.core.spec import load_spec
from keel.data import datasets
from keel.monitoring.export_span import export_span
from keel.monitoring.logs import LogError

from helpers import keel, penguin_spec
from serving_helpers import FEATURES, Server, eval_examples, instance, label, wait_for_logged


def _send(server, path: str, body: dict) -> str:
    response = server.predict(body, path=path)
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


class Exported:
    """Span 1 is the penguins; a model trained on it is served; eval rows are sent as predict
    instances, predict columns, serialized tf.Examples and classify examples; all but one labelled."""

    def __init__(self, root: Path):
        self.root, self.workdir = root, root / "work"
        record = datasets.materialise("penguins", root / "builtin")
        (root / "spans" / "span-1").mkdir(parents=True)
        (root / "spans" / "span-1" / "penguins.csv").write_bytes(Path(record["file"]).read_bytes())
        self.spec = penguin_spec(
            root,
            steps=20,
            source="spans/span-{SPAN}/penguins.csv",
            threshold=0.0,
            hparams={"hidden": [8], "learning_rate": 0.01},
            eval_steps=5,
            max_regression=1.0,
        )
        first = keel("run", self.spec, "--workdir", self.workdir)
        assert first.returncode == 0, first.stderr[-3000:]
        complete = [
            e for e in eval_examples(self.workdir) if all(v is not None for v in instance(e, FEATURES).values())
        ]
        examples = complete[:: max(1, len(complete) // 12)][:12]  # spread over the split's species
        self.labels, ids = {}, []
        server = Server(self.workdir, root / "logs")
        try:
            rows = [instance(e, FEATURES) for e in examples[:8]]
            for e, row in zip(examples[:4], rows[:4], strict=True):  # one row each, row form
                ids.append((_send(server, "/v1/models/penguin:predict", {"instances": [row]}), e))
            columns = {name: [r[name] for r in rows[4:8]] for name in FEATURES}  # four rows, columnar form
            batch = _send(server, "/v1/models/penguin:predict", {"inputs": columns})
            ids += [(f"{batch}/{i}", e) for i, e in enumerate(examples[4:8])]
            for e in examples[8:10]:  # serialized tf.Examples
                b64 = base64.b64encode(e.SerializeToString()).decode()
                ids.append((_send(server, "/v1/models/penguin:predict", {"instances": [{"b64": b64}]}), e))
            classified = _send(
                server, "/v1/models/penguin:classify", {"examples": [instance(e, FEATURES) for e in examples[10:12]]}
            )
            ids += [(f"{classified}/{i}", e) for i, e in enumerate(examples[10:12])]
            wait_for_logged(server.log_dir, 8)
        finally:
            server.stop()
        self.logs = server.log_dir
        self.sent = ids
        self.labels = {request_id: label(e) for request_id, e in ids[1:]}  # the first row stays unlabelled
        self.labels_file = root / "labels.csv"
        with open(self.labels_file, "w", newline="") as handle:
            csv.writer(handle).writerows([["request_id", "label"], *self.labels.items()])
        self.export = keel(
            "logs",
            "export",
            "--spec",
            self.spec,
            "--workdir",
            self.workdir,
            "--logs",
            self.logs,
            "--span",
            "2",
            "--labels",
            self.labels_file,
        )
        assert self.export.returncode == 0, self.export.stderr[-3000:]
        self.second = keel("run", self.spec, "--span", "2", "--workdir", self.workdir)
        assert self.second.returncode == 0, self.second.stderr[-3000:]
        self.lineage = keel("lineage", "--workdir", self.workdir, "--json")
        self.lineage_text = keel("lineage", "--workdir", self.workdir)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    return Exported(tmp_path_factory.mktemp("logs-export"))


def test_the_exported_span_holds_every_labelled_row_in_the_source_format(exported):
    span = exported.root / "spans" / "span-2" / "penguins.csv"
    assert f"span 2: {len(exported.labels)} rows" in exported.export.stdout
    assert "dropped 1 row(s) without a label" in exported.export.stdout
    with open(span, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    with open(exported.root / "spans" / "span-1" / "penguins.csv", newline="") as handle:
        assert header == next(csv.reader(handle))
    assert len(rows) == len(exported.labels) == len(exported.sent) - 1
    by_column = [dict(zip(header, row, strict=True)) for row in rows]
    sent = [e for _, e in exported.sent[1:]]
    for row, example in zip(by_column, sent, strict=True):
        assert row["species"] == label(example)
        for name, value in instance(example, FEATURES).items():
            assert (float(row[name]) == pytest.approx(value)) if isinstance(value, float) else row[name] == str(value)


def test_a_retrain_on_the_exported_span_names_the_logs_in_its_lineage(exported):
    assert "span 2" in exported.second.stdout
    record = json.loads(exported.lineage.stdout)
    assert record["data"]["span"] == 2
    origin = record["data"]["origin"]
    logs = sorted(str(p) for p in exported.logs.glob("*.tfrecord"))
    assert [f["path"] for f in origin["logs"]] == logs and all(len(f["sha256"]) == 64 for f in origin["logs"])
    assert origin["labels"]["path"] == str(exported.labels_file) and origin["matches"]
    versions = {e.name for e in (exported.workdir / "serving" / "penguin").iterdir()}
    assert set(origin["versions"]) < versions and origin["rows"] == len(exported.labels)
    assert "exported from the request logs of penguin version(s)" in exported.lineage_text.stdout
    assert f"log: {logs[0]}" in exported.lineage_text.stdout


def test_export_refuses_to_overwrite_and_names_what_is_missing(exported, tmp_path):
    spec = load_spec(exported.spec)
    with pytest.raises(LogError, match=r"--span 2: .*span-2/penguins.csv exists; keel never overwrites a span"):
        export_span(spec, exported.workdir, exported.logs, 2, labels=exported.labels_file)
    builtin = load_spec(penguin_spec(tmp_path))
    with pytest.raises(LogError, match=r"data.source: 'builtin:penguins' has no \{SPAN\}"):
        export_span(builtin, exported.workdir, exported.logs, 3)
    assert tf.io.gfile.exists(str(exported.root / "spans" / "span-2.lineage.json"))
