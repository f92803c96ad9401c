"""Mobile export: the digits pipeline through LiteExporter, checked with the real LiteRT interpreter."""

import glob
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keel.core.spec import parse_spec, to_toml
from keel.export.examples import dense_matrix, read_split, text_matrix
from keel.mlmd import store as metadata

from helpers import REPO, keel, node_states, pushed_versions

UPSTREAM = [
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
    "Trainer",
    "Evaluator",
    "Pusher",
]


def digits_spec(directory: Path, name: str, lite: str) -> Path:
    """A digits spec trained briefly, with the given [export.lite] body."""
    path = directory / f"{name}.toml"
    path.write_text(f"""
[pipeline]
name = "digits"

[data]
source = "builtin:digits"
label = "digit"
task = "classification"  # numbers, but classes (auto would train a regression)

[model]
module = "{REPO / "models" / "digits_cnn.py"}"
hparams = {{ filters = [32, 64], dense = 256, learning_rate = 0.003 }}

[train]
steps = 250
eval_steps = 10
jit_compile = false

[eval]
threshold = 0.9

[export.lite]
{lite}
""")
    return path


class DigitsRuns:
    """One digits workdir: a gated export, then an unmeetable size budget (only LiteExporter re-runs)."""

    def __init__(self, root: Path):
        self.root, self.workdir = root, root / "work"
        self.spec = digits_spec(root, "digits", 'variants = ["float32", "int8"]\nmax_accuracy_drop = 0.005')
        self.run = keel("run", self.spec, "--workdir", self.workdir)
        self.states = node_states(self.workdir)
        self.version = Path(pushed_versions(self.workdir, "digits")[-1])
        self.lite = self.version / "lite"
        tight = digits_spec(root, "tight", 'variants = ["float32", "int8"]\nmax_size_bytes = 1000')
        self.tight = keel("run", tight, "--workdir", self.workdir)
        self.tight_states = node_states(self.workdir)


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> DigitsRuns:
    return DigitsRuns(tmp_path_factory.mktemp("digits"))


def eval_records(workdir: Path) -> list[bytes]:
    uri = sorted(glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*")))[-1]
    return read_split(uri, "eval")


def app_inputs(signature: dict, records: list[bytes]) -> dict[str, np.ndarray]:
    """The raw values a phone app has, laid out as signature.json says: float32 columns, or one string per row."""
    inputs = {}
    for spec in signature["inputs"]:
        if spec["dtype"] == "string":
            inputs[spec["name"]] = text_matrix(records, spec["columns"])[:, 0]
        else:
            inputs[spec["name"]] = dense_matrix(records, spec["columns"])
    return inputs


def lite_probabilities(model_file: Path, signature: dict, records: list[bytes]) -> np.ndarray:
    """Runs a .tflite file the way a phone app would: the signature.json inputs, one example per call."""
    interpreter = Interpreter(model_path=str(model_file))
    runner = interpreter.get_signature_runner(signature["signature_key"])
    inputs = app_inputs(signature, records)
    return np.concatenate(
        [runner(**{n: v[i : i + 1] for n, v in inputs.items()})["probabilities"] for i in range(len(records))]
    )


def savedmodel_probabilities(version: Path, records: list[bytes]) -> np.ndarray:
    model = tf.saved_model.load(str(version))
    return model.signatures["serving_default"](examples=tf.constant(records))["probabilities"].numpy()


def test_digits_pipeline_exports_a_gated_int8_model_litert_runs(digits):
    assert digits.run.returncode == 0, digits.run.stderr[-3000:]
    assert digits.states["LiteExporter"] == "COMPLETE"
    assert {p.name for p in digits.lite.iterdir()} == {"model.tflite", "signature.json", "report.md", "report.json"}
    report = json.loads((digits.lite / "report.json").read_text())
    assert report["chosen"] == "int8"
    int8 = next(v for v in report["variants"] if v["name"] == "int8")
    assert int8["accuracy_drop"] <= 0.005 and int8["passed"]

    signature = json.loads((digits.lite / "signature.json").read_text())
    assert sorted(signature["label_vocabulary"]) == [str(d) for d in range(10)]  # in class-index order
    assert signature["inputs"][0]["columns"] == [f"pixel_{i:02d}" for i in range(64)]
    interpreter = Interpreter(model_path=str(digits.lite / "model.tflite"))
    interpreter.allocate_tensors()
    assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details()), "weights are not int8"

    records = eval_records(digits.workdir)
    lite = lite_probabilities(digits.lite / "model.tflite", signature, records)
    server = savedmodel_probabilities(digits.version, records)
    agreement = np.mean(lite.argmax(-1) == server.argmax(-1))
    assert agreement >= 0.98, f"int8 agrees with the SavedModel on only {agreement:.3f} of eval rows"


def test_export_is_recorded_in_ml_metadata(digits):
    store = metadata.open_store(digits.workdir)
    (artifact,) = [a for a in store.get_artifacts_by_type("keel.LiteModel") if metadata.custom(a, "exported")]
    assert metadata.custom(artifact, "variant") == "int8"
    assert metadata.custom(artifact, "lite_destination") == str(digits.lite)
    assert metadata.custom(artifact, "size_bytes") == (digits.lite / "model.tflite").stat().st_size
    assert (Path(artifact.uri) / "model.tflite").read_bytes() == (digits.lite / "model.tflite").read_bytes()


def test_int8_is_at_most_035x_the_float32_size(digits):
    sizes = {v["name"]: v["size_bytes"] for v in json.loads((digits.lite / "report.json").read_text())["variants"]}
    assert sizes["int8"] <= 0.35 * sizes["float32"], sizes


def test_a_budget_no_variant_meets_fails_the_component_with_its_table(digits):
    run = digits.tight
    assert run.returncode == 2, run.stderr[-3000:]
    assert "error: no LiteRT variant meets the export policy" in run.stderr
    for variant in ("savedmodel", "float32", "int8"):
        assert f"error: | {variant} |" in run.stderr
    assert "> max_size_bytes 1000" in run.stderr
    assert "Traceback" not in run.stderr
    assert {n: digits.tight_states[n] for n in UPSTREAM} == dict.fromkeys(UPSTREAM, "CACHED")
    assert digits.tight_states["LiteExporter"] == "FAILED"


def test_keel_export_standalone_float32_agrees_with_the_savedmodel(digits, tmp_path):
    out = tmp_path / "lite"
    result = keel("export", digits.spec, "--workdir", digits.workdir, "--variants", "float32", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"exported float32: {out}" in result.stdout
    signature = json.loads((out / "signature.json").read_text())
    records = eval_records(digits.workdir)
    lite = lite_probabilities(out / "model.tflite", signature, records)
    server = savedmodel_probabilities(digits.version, records)
    assert np.mean(lite.argmax(-1) == server.argmax(-1)) >= 0.99
    np.testing.assert_allclose(lite, server, atol=1e-4)


def test_penguin_exports_with_its_text_features_as_raw_strings(penguin_runs, tmp_path):
    """island and sex go in as the strings the app has; the vocabularies are constant tables in the graph."""
    out = tmp_path / "lite"
    version = Path(pushed_versions(penguin_runs.workdir)[-1])
    examples = sorted(glob.glob(str(penguin_runs.workdir / "pipeline" / "CsvExampleGen" / "examples" / "*")))[-1]
    result = keel("export", version, "--examples", examples, "--variants", "float32", "int8", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    signature = json.loads((out / "signature.json").read_text())
    assert [(i["name"], i["dtype"]) for i in signature["inputs"]] == [
        ("features", "float32"),
        ("island", "string"),
        ("sex", "string"),
    ]
    assert "runSignature" in signature["usage"]["kotlin"] and "signatureRunner" in signature["usage"]["swift"]
    report = json.loads((out / "report.json").read_text())
    float32 = next(v for v in report["variants"] if v["name"] == "float32")
    assert float32["passed"] and float32["agreement"] == 1.0, float32
    assert {"HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT"} <= set(float32["ops"])
    assert not [op for v in report["variants"] for op in v["ops"] if op.startswith("Flex")]

    records = read_split(examples, "eval")
    lite = lite_probabilities(out / "model.tflite", signature, records)
    server = savedmodel_probabilities(version, records)
    assert np.mean(lite.argmax(-1) == server.argmax(-1)) == 1.0
    np.testing.assert_allclose(lite, server, atol=1e-4)

    # A value unseen in training, and a missing one, get the index TFT gives them: the SavedModel agrees.
    runner = Interpreter(model_path=str(out / "model.tflite")).get_signature_runner("serving_mobile")
    numbers = app_inputs(signature, records[:1])["features"]
    raw = tf.saved_model.load(str(version)).signatures["serving_raw"]
    dtypes = {n: s.dtype for n, s in raw.structured_input_signature[1].items()}
    for island, sex in [("Atlantis", ""), ("Biscoe", "unknown")]:
        mobile = runner(
            features=numbers, island=np.array([island.encode()], object), sex=np.array([sex.encode()], object)
        )
        columns = signature["inputs"][0]["columns"]
        reference = raw(
            island=tf.constant([island]),
            sex=tf.constant([sex]),
            **{c: tf.constant(numbers[:, j], dtypes[c]) for j, c in enumerate(columns)},
        )
        np.testing.assert_allclose(mobile["probabilities"], reference["probabilities"].numpy(), atol=1e-4)


def test_export_lite_section_is_optional_and_checked(tmp_path):
    base = "[pipeline]\nname = 'd'\n[data]\nsource = 'builtin:digits'\nlabel = 'digit'\n[model]\nmodule = 'm.py'\n"
    assert parse_spec(base, tmp_path / "a.toml").export.lite is None
    lite = parse_spec(base + "[export.lite]\n", tmp_path / "b.toml").export.lite
    assert (lite.variants, lite.choose, lite.max_accuracy_drop) == (
        ["float32", "float16", "dynamic", "int8"],
        "smallest",
        0.005,
    )
    spec = parse_spec(base + "[export.lite]\nvariants = ['int8']\nmax_size_bytes = 5000\n", tmp_path / "e.toml")
    assert parse_spec(to_toml(spec.resolved()), tmp_path / "f.toml").export.lite == spec.export.lite
    from keel.core.errors import SpecError

    with pytest.raises(
        SpecError, match=r"export\.lite\.chose: unknown key in \[export\.lite\] \(did you mean 'choose'"
    ):
        parse_spec(base + "[export.lite]\nchose = 'smallest'\n", tmp_path / "c.toml")
    with pytest.raises(SpecError, match=r"export\.lite\.variants\.0: got 'int4'"):
        parse_spec(base + "[export.lite]\nvariants = ['int4']\n", tmp_path / "d.toml")
