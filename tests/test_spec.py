"""Spec errors: one line each, naming the field path, the received value and what was expected."""

import pytest

from conftest import REPO, keel, penguin_spec
from keel.core.errors import SpecError
from keel.core.spec import load_spec, parse_spec, to_toml


def error_of(tmp_path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return str(caught.value)


def with_section(tmp_path, replace: str, by: str) -> str:
    text = penguin_spec(tmp_path).read_text()
    assert replace in text
    return text.replace(replace, by)


def test_example_specs_are_valid():
    for name in ["penguin", "taxi"]:
        spec = load_spec(REPO / "pipelines" / f"{name}.toml")
        assert spec.pipeline.name == name


def test_unknown_key_names_the_path_and_suggests_the_right_one(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, "steps = 200", "stpes = 200"))
    assert message == ("bad.toml: train.stpes: unknown key in [train] (did you mean 'steps'?); "
                       "expected one of: steps, eval_steps, batch_size, seed, jit_compile, accelerator, tpu, "
                       "precision")


def test_unknown_section(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, "[train]", "[training]"))
    assert message.startswith("bad.toml: training: unknown key in the top level (did you mean 'train'?)")


def test_wrong_type_quotes_the_value(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, "steps = 200", 'steps = "many"'))
    assert message == "bad.toml: train.steps: got 'many'; input should be a valid integer, unable to parse string as an integer"


def test_threshold_out_of_range(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, "threshold = 0.9", "threshold = 1.5"))
    assert message == "bad.toml: eval.threshold: got 1.5; input should be less than or equal to 1"


def test_label_not_in_the_data(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, 'label = "species"', 'label = "specie"'))
    assert message.startswith("bad.toml: data.label: 'specie' is not a column of builtin:penguins; expected one of: "
                              "species, island, bill_length_mm")


def test_feature_not_in_the_data(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, '"island", "sex"', '"island", "gender"'))
    assert message.startswith("bad.toml: features.categorical: 'gender' is not a column of builtin:penguins")


def test_several_problems_are_one_line_each(tmp_path):
    text = with_section(tmp_path, "steps = 200", "steps = 0\nbatch_size = -1")
    text = text.replace("batch_size = 32\n", "")
    lines = error_of(tmp_path, text).splitlines()
    assert lines == ["bad.toml: train.steps: got 0; input should be greater than or equal to 1",
                     "bad.toml: train.batch_size: got -1; input should be greater than or equal to 1"]


def test_missing_required_key(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, 'label = "species"\n', ""))
    assert message == "bad.toml: data.label: required key is missing"


def test_malformed_toml(tmp_path):
    message = error_of(tmp_path, "[pipeline\nname = 'x'\n")
    assert message.startswith("bad.toml: not valid TOML: ") and "line 1" in message


def test_missing_model_module(tmp_path):
    text = penguin_spec(tmp_path).read_text().replace(str(REPO / "models" / "tabular.py"), "nope.py")
    assert "bad.toml: model.module: 'nope.py' does not exist" in error_of(tmp_path, text)


def test_unknown_builtin(tmp_path):
    message = error_of(tmp_path, with_section(tmp_path, "builtin:penguins", "builtin:pinguins"))
    assert message == ("bad.toml: data.source: 'builtin:pinguins' is not a builtin data set; "
                       "expected one of: builtin:penguins, builtin:taxi, builtin:digits")


def test_resolved_spec_round_trips_through_toml(tmp_path):
    spec = load_spec(penguin_spec(tmp_path))
    again = parse_spec(to_toml(spec.resolved()), tmp_path / "again.toml")
    assert again.resolved() == spec.resolved()
    assert spec.resolved()["train"]["seed"] == 42  # defaults are filled in


def test_cli_validate_errors_exit_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(with_section(tmp_path, "steps = 200", 'steps = "many"'))
    result = keel("validate", bad)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: bad.toml: train.steps: got 'many'; input should be a valid integer, unable to parse string as an integer"]
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_validate_prints_the_resolved_spec(tmp_path):
    result = keel("validate", REPO / "pipelines" / "penguin.toml")
    assert result.returncode == 0, result.stderr
    assert "eval_percent = 20" in result.stdout and "seed = 42" in result.stdout
