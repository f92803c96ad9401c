"""Mobile export of a regression model: `keel export` on the pushed penguin body-mass model, run with LiteRT."""

import glob
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keel.export.examples import dense_matrix, label_values, read_split

from helpers import keel, read_spec, write_spec


def lite_spec(mass_run, path: Path, lite: dict) -> Path:
    """The mass_run spec with the given [export.lite] section, written to `path`."""
    return write_spec(path, read_spec(mass_run.spec), {"export.lite": lite})


def eval_records(workdir: Path) -> list[bytes]:
    uri = sorted(glob.glob(str(workdir / "pipeline" / "CsvExampleGen" / "examples" / "*")))[-1]
    return read_split(uri, "eval")


def test_float32_passes_a_tight_bound_and_predicts_what_the_savedmodel_does(mass_run, tmp_path):
    spec = lite_spec(mass_run, tmp_path / "penguin_mass.toml", {"variants": ["float32"], "max_abs_diff": 0.01})
    out = tmp_path / "lite"
    result = keel("export", spec, "--workdir", mass_run.workdir, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    header, _, reference, float32 = result.stdout.splitlines()[:4]
    assert header == (
        "| variant | size (bytes) | rmse | max abs diff | mean abs diff | latency median (us) | latency p99 (us) "
        "| passes |"
    )
    assert reference.startswith("| savedmodel | - |") and reference.endswith("| reference |")
    assert float32.startswith("| float32 |") and float32.endswith("| yes |")
    assert f"exported float32: {out}" in result.stdout

    report = json.loads((out / "report.json").read_text())
    assert (report["metric"], report["label"], report["chosen"]) == (
        "root_mean_squared_error",
        "body_mass_g",
        "float32",
    )
    assert report["policy"]["max_abs_diff"] == 0.01 and "max_accuracy_drop" not in report["policy"]
    (variant,) = report["variants"]
    assert set(variant) >= {"rmse", "max_abs_diff", "mean_abs_diff"} and "accuracy" not in variant
    assert variant["max_abs_diff"] <= 0.01 and variant["mean_abs_diff"] <= variant["max_abs_diff"]
    assert abs(variant["rmse"] - report["savedmodel"]["rmse"]) <= 0.01
    assert "| rmse | max abs diff | mean abs diff |" in (out / "report.md").read_text()

    signature = json.loads((out / "signature.json").read_text())
    (output,) = signature["outputs"]
    assert (output["name"], output["shape"], output["label"]) == ("predictions", [-1], "body_mass_g")
    assert "label_vocabulary" not in signature and "units" in output["note"]

    # As a phone app would: signature.json's columns, one row per call; next to TF Serving's answer.
    records = eval_records(mass_run.workdir)
    runner = Interpreter(model_path=str(out / "model.tflite")).get_signature_runner(signature["signature_key"])
    (features,) = signature["inputs"]
    rows = dense_matrix(records, features["columns"])
    lite = np.concatenate([runner(**{features["name"]: rows[i : i + 1]})["predictions"] for i in range(len(rows))])
    server = tf.saved_model.load(mass_run.versions[-1]).signatures["serving_default"](examples=tf.constant(records))
    np.testing.assert_allclose(lite, server["predictions"].numpy(), atol=0.01)
    grams = label_values(records, "body_mass_g")
    assert np.isclose(np.sqrt(np.mean((lite - grams) ** 2)), variant["rmse"], rtol=1e-6)


def test_a_bound_int8_cannot_meet_fails_the_gate_naming_it(mass_run, tmp_path):
    spec = lite_spec(mass_run, tmp_path / "penguin_mass.toml", {"max_abs_diff": 1e-6})
    out = tmp_path / "lite"
    result = keel("export", spec, "--workdir", mass_run.workdir, "--variants", "int8", "--out", out)
    assert result.returncode == 2, result.stdout + result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0] == "error: no LiteRT variant meets the export policy; measured on the eval split:"
    (int8,) = [line for line in errors if line.startswith("error: | int8 |")]
    assert "| no: max abs diff " in int8 and int8.endswith("> max_abs_diff 1e-06 |")
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_unset_bound_is_one_percent_of_the_labels_spread(mass_run, tmp_path):
    spec = lite_spec(mass_run, tmp_path / "penguin_mass.toml", {"variants": ["float32", "float16", "int8"]})
    out = tmp_path / "lite"
    result = keel("export", spec, "--workdir", mass_run.workdir, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    masses = label_values(eval_records(mass_run.workdir), "body_mass_g")
    bound = json.loads((out / "report.json").read_text())["policy"]["max_abs_diff"]
    assert abs(bound - 0.01 * np.nanstd(masses)) < 1e-6
    rows = {line.split(" | ")[0].strip("| "): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert rows["float16"].endswith("| yes |")  # a few grams off, within 1% of the spread (about 8 g)
    assert rows["int8"].endswith(f"> max_abs_diff {bound:g} |")
