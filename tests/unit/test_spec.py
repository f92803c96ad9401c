"""Spec errors: one line each, naming the field path, the received value and what was expected."""

import pytest

from keel.core.errors import SpecError
from keel.core.spec import load_spec, parse_overrides, parse_spec, to_toml

from helpers import REPO, merged, penguin_data, write_spec


def error_of(tmp_path, data: dict, overrides: dict | None = None) -> str:
    """The SpecError message of loading `data` merged with `overrides`, written as bad.toml."""
    path = write_spec(tmp_path / "bad.toml", data, overrides)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return str(caught.value)


def test_example_specs_are_valid():
    for name in ["penguin", "taxi", "digits", "taxi_fare", "breast_cancer", "digits_images"]:
        spec = load_spec(REPO / "pipelines" / f"{name}.toml")
        assert spec.pipeline.name == name


def test_the_test_penguin_spec_is_valid(tmp_path):
    assert load_spec(write_spec(tmp_path / "p.toml", penguin_data())).train.steps == 200


def test_unknown_key_names_the_path_and_suggests_the_right_one(tmp_path):
    message = error_of(tmp_path, penguin_data(), {"train.steps": None, "train.stpes": 200})
    assert message == (
        "bad.toml: train.stpes: unknown key in [train] (did you mean 'steps'?); "
        "expected one of: steps, eval_steps, batch_size, seed, backend, jit_compile, jit_probe_budget, accelerator, tpu, workers, "
        "precision, label_scaling"
    )


def test_unknown_section(tmp_path):
    data = penguin_data()
    data["training"] = data.pop("train")
    assert error_of(tmp_path, data).startswith(
        "bad.toml: training: unknown key in the top level (did you mean 'train'?)"
    )


def test_wrong_type_quotes_the_value(tmp_path):
    message = error_of(tmp_path, penguin_data(), {"train.steps": "many"})
    assert (
        message
        == "bad.toml: train.steps: got 'many'; input should be a valid integer, unable to parse string as an integer"
    )


def test_threshold_out_of_range(tmp_path):
    assert error_of(tmp_path, penguin_data(threshold=1.5)) == (
        "bad.toml: eval.threshold: got 1.5; sparse_categorical_accuracy lies in [0, 1]"
    )


def test_label_not_in_the_data(tmp_path):
    message = error_of(tmp_path, penguin_data(), {"data.label": "specie"})
    assert message.startswith(
        "bad.toml: data.label: 'specie' is not a column of builtin:penguins; expected one of: "
        "species, island, bill_length_mm"
    )


def test_feature_not_in_the_data(tmp_path):
    message = error_of(tmp_path, penguin_data(), {"features.categorical": ["island", "gender"]})
    assert message.startswith("bad.toml: features.categorical: 'gender' is not a column of builtin:penguins")


def test_a_feature_listed_twice_or_as_the_label(tmp_path):
    message = error_of(tmp_path, penguin_data(), {"features.categorical": ["island", "sex", "body_mass_g", "species"]})
    assert message.splitlines() == [
        "bad.toml: features: 'body_mass_g' is listed as both numeric and categorical",
        "bad.toml: features.categorical: the label 'species' cannot also be a feature",
    ]


def test_several_problems_are_one_line_each(tmp_path):
    lines = error_of(tmp_path, penguin_data(steps=0), {"train.batch_size": -1}).splitlines()
    assert lines == [
        "bad.toml: train.steps: got 0; input should be greater than or equal to 1",
        "bad.toml: train.batch_size: got -1; input should be greater than or equal to 1",
    ]


def test_missing_required_key(tmp_path):
    assert error_of(tmp_path, penguin_data(), {"data.label": None}) == "bad.toml: data.label: required key is missing"


def test_malformed_toml(tmp_path):
    with pytest.raises(SpecError) as caught:
        parse_spec("[pipeline\nname = 'x'\n", tmp_path / "bad.toml")
    assert str(caught.value).startswith("bad.toml: not valid TOML: ") and "line 1" in str(caught.value)


def test_spec_file_missing_or_not_utf8(tmp_path):
    with pytest.raises(SpecError, match="nope.toml: spec file not found"):
        load_spec(tmp_path / "nope.toml")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(write_spec(latin1, penguin_data(name="pingüino")).read_text().encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin1.toml: cannot read the spec as UTF-8 text \(UnicodeDecodeError\)"):
        load_spec(latin1)


def test_missing_model_module(tmp_path):
    message = error_of(tmp_path, penguin_data(), {"model.module": "nope.py"})
    assert message == f"bad.toml: model.module: 'nope.py' does not exist (looked for {tmp_path / 'nope.py'})"


def test_unknown_builtin(tmp_path):
    assert error_of(tmp_path, penguin_data(source="builtin:pinguins")) == (
        "bad.toml: data.source: 'builtin:pinguins' is not a builtin data set; "
        "expected one of: builtin:penguins, builtin:taxi, builtin:digits, builtin:breast_cancer, builtin:digits_images"
    )


def test_schema_file_that_does_not_parse(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature {\n  name: "island"\n  tpye: BYTES\n}\n')
    message = error_of(tmp_path, penguin_data(), {"data.schema": str(schema)})
    assert message.startswith(f"bad.toml: data.schema: {str(schema)!r} is not a schema.pbtxt")
    assert 'no field named "tpye"' in message


def test_parsing_alone_does_not_check_files(tmp_path):
    path = write_spec(tmp_path / "p.toml", penguin_data(), {"model.module": "nope.py", "data.label": "specie"})
    assert load_spec(path, check_files=False).data.label == "specie"


def test_resolved_spec_round_trips_through_toml(tmp_path):
    spec = load_spec(write_spec(tmp_path / "p.toml", penguin_data()))
    again = parse_spec(to_toml(spec.resolved()), tmp_path / "again.toml")
    assert again.resolved() == spec.resolved()
    assert spec.resolved()["train"]["seed"] == 42  # defaults are filled in


def test_merged_sets_creates_and_removes_dotted_keys():
    base = {"train": {"steps": 1, "seed": 2}}
    assert merged(base, {"train.steps": 5, "train.seed": None, "beam.runner": "DirectRunner"}) == {
        "train": {"steps": 5},
        "beam": {"runner": "DirectRunner"},
    }
    assert base == {"train": {"steps": 1, "seed": 2}}  # the base is not changed


def test_set_values_are_toml_values_or_else_strings():
    assert parse_overrides(
        ["train.steps=800", "model.hparams.learning_rate=0.02", "model.hparams.hidden=[64, 32]", "data.source=d/*.csv"]
    ) == {
        "train.steps": 800,
        "model.hparams.learning_rate": 0.02,
        "model.hparams.hidden": [64, 32],
        "data.source": "d/*.csv",
    }
    assert parse_overrides(['pipeline.name="x"', "train.jit_compile=true"]) == {
        "pipeline.name": "x",
        "train.jit_compile": True,
    }


@pytest.mark.parametrize("item", ["train.steps", "=3", "train..steps=3"])
def test_a_set_without_a_dotted_key_and_value_is_one_line(item):
    with pytest.raises(SpecError) as caught:
        parse_overrides([item])
    assert str(caught.value) == f"--set {item}: expected KEY=VALUE with a dotted key, e.g. train.steps=800"


def test_set_overrides_the_file_and_its_errors_name_set(tmp_path):
    path = write_spec(tmp_path / "p.toml", penguin_data())
    spec = load_spec(path, overrides={"train.steps": 800, "model.hparams.learning_rate": 0.02})
    assert spec.train.steps == 800 and spec.model.hparams["learning_rate"] == 0.02
    assert spec.model.hparams["hidden"] == [32, 16] and spec.overrides == {
        "train.steps": 800,
        "model.hparams.learning_rate": 0.02,
    }
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides={"train.stpes": 800, "train.batch_size": "many"})
    assert str(caught.value).splitlines() == [
        "--set: train.batch_size: got 'many'; input should be a valid integer, unable to parse string as an integer",
        "--set: train.stpes: unknown key in [train] (did you mean 'steps'?); expected one of: steps, eval_steps, "
        "batch_size, seed, backend, jit_compile, jit_probe_budget, accelerator, tpu, workers, precision, label_scaling",
    ]
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides={"train.steps.max": 3})
    assert str(caught.value) == "--set train.steps.max: train.steps is a value, not a table"
