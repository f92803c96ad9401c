"""Lineage, diff, data spans and borrowed weights, on two real pipeline runs over two data spans.

Run A trains on span 1; run B reads the latest span (2), changes train.steps and borrows run A's
pushed model as its warm start with a learning rate of 0, so B's weights are exactly the borrowed ones.
"""

import csv
import hashlib
import json
import random
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keel import cli
from keel.core.errors import ModelCodeError, SpecError
from keel.core.spec import load_spec
from keel.data import datasets
from keel.data.sources import prepare_source
from keel.executors import warm_start
from keel.mlmd import lineage
from keel.registry import diff

from helpers import TABULAR, keel, penguin_spec, pushed_versions

ROWS = {1: 240, 2: 344}


def write_spans(root: Path) -> Path:
    """span-1/penguins.csv (240 of the penguins, shuffled) and span-2/penguins.csv (all 344)."""
    record = datasets.materialise("penguins", root / "builtin")
    with open(record["file"], newline="") as f:
        header, *body = list(csv.reader(f))
    random.Random(0).shuffle(body)
    for span, rows in ROWS.items():
        directory = root / "spans" / f"span-{span}"
        directory.mkdir(parents=True)
        with open(directory / "penguins.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *body[:rows]])
    return root / "spans"


def span_spec(
    root: Path,
    steps: int,
    hparams: dict,
    warm_start: str | Path | None = None,
    source: str = "spans/span-{SPAN}/penguins.csv",
) -> Path:
    """A briefly trained penguin spec over the spans that always blesses, warm-started from `warm_start`."""
    return penguin_spec(
        root,
        {"model.warm_start": str(warm_start) if warm_start else None},
        steps=steps,
        source=source,
        threshold=0.0,
        hparams=hparams,
        eval_steps=5,
        max_regression=1.0,
    )


class TwoSpans:
    def __init__(self, root: Path):
        self.root, self.workdir = root, root / "work"
        write_spans(root)
        self.spec = span_spec(root, 20, {"hidden": [8], "learning_rate": 0.01})
        self.run_a = keel("run", self.spec, "--span", "1", "--workdir", self.workdir)
        assert self.run_a.returncode == 0, self.run_a.stderr[-3000:]
        self.version_a = Path(pushed_versions(self.workdir)[-1])
        span_spec(root, 30, {"hidden": [8], "learning_rate": 0.0}, self.version_a)
        self.run_b = keel("run", self.spec, "--workdir", self.workdir)
        assert self.run_b.returncode == 0, self.run_b.stderr[-3000:]
        self.version_b = Path(pushed_versions(self.workdir)[-1])


@pytest.fixture(scope="module")
def two_spans(tmp_path_factory) -> TwoSpans:
    return TwoSpans(tmp_path_factory.mktemp("spans"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_spans_have_different_fingerprints_in_lineage(two_spans):
    assert "span 1" in two_spans.run_a.stdout and "span 2" in two_spans.run_b.stdout
    a = lineage.model_lineage(two_spans.workdir, two_spans.version_a.name)
    b = lineage.model_lineage(two_spans.workdir, "latest")
    for record, span in ((a, 1), (b, 2)):
        data = record.data
        assert data.span == span and data.examples.span == span
        csv_file = two_spans.root / "spans" / f"span-{span}" / "penguins.csv"
        assert data.files == [{"path": str(csv_file), "sha256": sha256(csv_file)}]
        assert sum(data.rows.values()) == ROWS[span] and set(data.rows) == {"train", "eval"}
    assert a.data.files[0]["sha256"] != b.data.files[0]["sha256"]
    assert a.data.examples.fingerprint != b.data.examples.fingerprint
    assert b.pushed[0].version == two_spans.version_b.name
    assert a.code["module_sha256"] == sha256(TABULAR)
    assert b.spec.resolved["train"]["steps"] == 30 and b.spec.sha256 == sha256(two_spans.spec)
    assert b.evaluation.blessed and b.evaluation.blessing_reasons == ["every threshold met"]


def test_lineage_cli_prints_the_record(two_spans, capsys):
    text = keel("lineage", "--workdir", two_spans.workdir)
    assert text.returncode == 0, text.stderr
    assert "span 2" in text.stdout and "borrowed weights: " + str(two_spans.version_a) in text.stdout
    assert cli.main(["lineage", two_spans.version_a.name, "--workdir", str(two_spans.workdir), "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["data"]["span"] == 1 and as_json["warm_start"] is None
    assert as_json == lineage.model_lineage(two_spans.workdir, two_spans.version_a.name).to_dict()


def test_diff_names_the_changed_spec_fields_and_the_data_change(two_spans, capsys):
    assert cli.main(["diff", "1", "2", "--workdir", str(two_spans.workdir)]) == 0
    out = capsys.readouterr().out
    assert "train.steps: 20 -> 30" in out
    assert f"model.warm_start: None -> '{two_spans.version_a}'" in out
    assert "span: 1 -> 2" in out
    assert "rows: train " in out and "-> " in out
    result = diff.diff(two_spans.workdir, "1", "2")
    fields = {c["field"] for c in result["spec"]["changes"]}
    assert fields == {"train.steps", "model.warm_start", "model.hparams"}
    files = result["data"]["files"]
    assert len(files["added"]) == 1 and len(files["removed"]) == 1 and "span-2" in files["added"][0]
    assert sum(result["data"]["rows"]["a"].values()) == 240 and sum(result["data"]["rows"]["b"].values()) == 344
    distances = result["data"]["distribution_distance"]
    assert {"body_mass_g", "island"} <= set(distances)
    assert distances["body_mass_g"]["measure"] == "JENSEN_SHANNON_DIVERGENCE"
    assert distances["island"]["measure"] == "L_INFTY"
    assert all(d["value"] > 0 for d in distances.values())  # 240 of 344 rows: every distribution moved a little
    assert result["code"]["module_sha256"]["a"] == result["code"]["module_sha256"]["b"]
    assert set(result["metrics"]) >= {"sparse_categorical_accuracy", "example_count"}


def test_warm_start_is_recorded_with_its_sha256(two_spans):
    record = lineage.model_lineage(two_spans.workdir, "latest").warm_start
    expected = hashlib.sha256()
    for f in sorted(p for p in two_spans.version_a.rglob("*") if p.is_file()):
        expected.update(f.relative_to(two_spans.version_a).as_posix().encode() + b"\0" + f.read_bytes())
    assert record.uri == str(two_spans.version_a)
    assert record.sha256 == expected.hexdigest()
    assert "warm start from" in two_spans.run_b.stdout


def test_warm_start_sets_the_initial_weights(two_spans):
    # Run B trained with learning rate 0: its weights are its initial weights, which must be run A's.
    borrowed = [v.numpy() for v in tf.saved_model.load(str(two_spans.version_a)).keras_variables]
    trained = [v.numpy() for v in tf.saved_model.load(str(two_spans.version_b)).keras_variables]
    assert len(borrowed) == len(trained) == 4
    for x, y in zip(borrowed, trained, strict=True):
        np.testing.assert_array_equal(x, y)


def test_unknown_model_is_a_clear_error(two_spans, capsys):
    assert cli.main(["lineage", "nope", "--workdir", str(two_spans.workdir)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: model 'nope': no pushed version, run id or artifact id by that name; expected latest or one of "
        f"the pushed versions: {two_spans.version_a.name}, {two_spans.version_b.name}"
    ]
    with pytest.raises(lineage.UnknownModelError, match=r"model '7': no pushed version, run id or registry index"):
        diff.diff(two_spans.workdir, "1", "7")


def _tiny_model(units: int) -> keras.Model:
    inputs = keras.Input(shape=(3,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(units)(inputs)))


def test_warm_start_from_a_weights_file(tmp_path):
    source, target = _tiny_model(4), _tiny_model(4)
    source.save_weights(tmp_path / "borrowed.weights.h5")
    assert not np.array_equal(source.weights[0].numpy(), target.weights[0].numpy())
    assert warm_start.load_into(target, tmp_path / "borrowed.weights.h5") == 4
    for x, y in zip(source.weights, target.weights, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    source.save(tmp_path / "borrowed.keras")
    with pytest.raises(ModelCodeError, match=r"model.warm_start: .*borrowed.keras holds 4 variables .* has 4 with"):
        warm_start.load_into(_tiny_model(5), tmp_path / "borrowed.keras")


def test_bad_warm_start_and_span_are_spec_errors(tmp_path):
    write_spans(tmp_path)
    (tmp_path / "not-a-model").mkdir()
    for value, expected in (
        ("missing.weights.h5", "'missing.weights.h5' does not exist"),
        ("not-a-model", "'not-a-model' is a directory without saved_model.pb"),
        (str(TABULAR), "is neither a SavedModel directory nor a .weights.h5 or .keras file"),
    ):
        spec = span_spec(tmp_path, 5, {}, value)
        with pytest.raises(SpecError, match=f"penguin.toml: model.warm_start: .*{expected}"):
            load_spec(spec)
    spec = load_spec(span_spec(tmp_path, 5, {}))
    source, provenance = prepare_source(spec, tmp_path / "work")
    assert source.span == 2 and provenance["span"] == 2
    with pytest.raises(SpecError, match=r"data.source: no files for span 9 under .*spans matching 'span-\{SPAN\}"):
        prepare_source(spec, tmp_path / "work", span=9)
    plain = load_spec(span_spec(tmp_path, 5, {}, source="spans/span-1/penguins.csv"))
    with pytest.raises(SpecError, match=r"--span 1: data.source 'spans/span-1/penguins.csv' has no \{SPAN\} in it"):
        prepare_source(plain, tmp_path / "work", span=1)
