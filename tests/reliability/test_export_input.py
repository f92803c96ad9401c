"""`keel export` refusals: one line naming the problem, and no output directory written."""

import glob
import shutil
from pathlib import Path

import pytest
from tensorflow.core.protobuf import saved_model_pb2

from checks import one_line_error
from helpers import keel, penguin_spec, pushed_versions


def examples_of(workdir):
    return sorted(glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*")))[-1]


def without_signature(version: str, name: str, copy: Path) -> Path:
    """A copy of a SavedModel without signature `name`, as a model with a custom preprocessing_fn has."""
    shutil.copytree(version, copy)
    saved = saved_model_pb2.SavedModel.FromString((copy / "saved_model.pb").read_bytes())
    meta_graph = saved.meta_graphs[0]
    del meta_graph.signature_def[name]
    graph = meta_graph.object_graph_def  # TF2 loaders read signatures from the object graph's signature map
    (signatures,) = [c.node_id for c in graph.nodes[0].children if c.local_name == "signatures"]
    kept = [c for c in graph.nodes[signatures].children if c.local_name != name]
    del graph.nodes[signatures].children[:]
    graph.nodes[signatures].children.extend(kept)
    (copy / "saved_model.pb").write_bytes(saved.SerializeToString())
    return copy


def test_categorical_features_without_the_encoded_signature_are_refused_by_name(penguin_runs, tmp_path):
    out = tmp_path / "lite"
    model = without_signature(pushed_versions(penguin_runs.workdir)[0], "serving_encoded", tmp_path / "model")
    result = keel("export", model, "--examples", examples_of(penguin_runs.workdir), "--out", out)
    one_line_error(result, "categorical features 'island', 'sex'", "'serving_encoded' signature")
    assert not out.exists(), "a failed export must write nothing"


CASES = {
    "not_a_saved_model": (
        lambda tmp, runs: ["export", tmp, "--examples", examples_of(runs.workdir)],
        "not a SavedModel directory (no saved_model.pb)",
    ),
    "saved_model_without_examples": (
        lambda tmp, runs: ["export", pushed_versions(runs.workdir)[0]],
        "needs --examples",
    ),
    "spec_with_nothing_pushed": (
        lambda tmp, runs: ["export", penguin_spec(tmp), "--workdir", tmp / "work"],
        "no ML Metadata store here",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_refusals_are_one_line(penguin_runs, tmp_path, case):
    args, fragment = CASES[case]
    out = tmp_path / "lite"
    one_line_error(keel(*args(tmp_path, penguin_runs), "--out", out), fragment)
    assert not out.exists()
