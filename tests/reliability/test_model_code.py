"""Model code that fails inside the Trainer: the run stops there with the user's error in one line.

The cases share one workdir, so after the first, ExampleGen through Transform come from TFX's cache
and only the Trainer runs again. Each asserts: exit 2, one `error:` line, no traceback, the Trainer
FAILED, nothing evaluated or pushed, no unfinished output marked LIVE.
"""

import pytest

from checks import nothing_half_written, one_line_error
from helpers import keel, node_states, penguin_mass_data, penguin_spec, write_spec

HEADER = "import keras\nfrom keel.data.features import FeatureSet\n\n"
BODY = """
def inputs_of(features):
    inputs = {n: keras.Input(shape=(1,), name=n, dtype="float32") for n in features.numeric}
    inputs.update({n: keras.Input(shape=(1,), name=n, dtype="int64") for n in features.categorical})
    return inputs


def head(inputs, units):
    x = keras.layers.Concatenate()([keras.ops.cast(v, "float32") for v in inputs.values()])
    return keras.layers.Dense(units, activation="softmax")(x)
"""
MODULES = {
    "raises": (
        "def build_model(hparams, features):\n    raise ValueError('hidden must be a list of ints')\n",
        ["model.module: build_model raised ValueError: hidden must be a list of ints"],
    ),
    "wrong_output_width": (
        "def build_model(hparams, features):\n    inputs = inputs_of(features)\n"
        "    return keras.Model(inputs, head(inputs, 2))\n",
        ["build_model's output has 2 units; the label 'species' has 3 classes", "expected 3"],
    ),
    "not_a_model": (
        "def build_model(hparams, features):\n    return {'layers': [32, 16]}\n",
        ["build_model returned dict; expected a keras.Model"],
    ),
    "missing_input": (
        "def build_model(hparams, features):\n    inputs = inputs_of(features)\n"
        "    inputs.pop('island')\n    return keras.Model(inputs, head(inputs, 3))\n",
        ["build_model's model has no input named 'island'"],
    ),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp("model-code")


@pytest.mark.parametrize("case", sorted(MODULES))
def test_model_code_errors_stop_the_trainer_in_one_line(shared, case):
    source, fragments = MODULES[case]
    module = shared / f"{case}.py"
    module.write_text(HEADER + BODY + "\n\n" + source)
    spec = penguin_spec(shared, {"model.module": str(module)})
    workdir = shared / "work"
    result = keel("run", spec, "--workdir", workdir)
    one_line_error(result, *fragments)
    states = node_states(workdir)
    assert states["Transform"] in ("COMPLETE", "CACHED") and states["Trainer"] == "FAILED"
    assert "Evaluator" not in states and "Pusher" not in states
    assert not (workdir / "serving").exists()
    nothing_half_written(workdir)


def test_a_regression_model_with_more_than_one_output_unit_stops_the_trainer(tmp_path):
    module = tmp_path / "softmax.py"
    module.write_text(
        HEADER + BODY + "\n\ndef build_model(hparams, features):\n    inputs = inputs_of(features)\n"
        "    return keras.Model(inputs, head(inputs, 3))\n"
    )
    spec = write_spec(tmp_path / "mass.toml", penguin_mass_data(steps=2), {"model.module": str(module)})
    result = keel("run", spec, "--workdir", tmp_path / "work")
    one_line_error(
        result,
        "build_model's output has 3 units; the task is regression (predicting 'body_mass_g'): expected 1 linear unit",
    )
    assert node_states(tmp_path / "work")["Trainer"] == "FAILED"
    nothing_half_written(tmp_path / "work")
