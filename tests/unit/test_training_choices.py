"""Training choices without training: XLA's cost model, fixed settings, precision policies, [train] keys."""

import keras
import pytest

from keel.core.errors import SpecError
from keel.core.spec import parse_spec
from keel.executors.training.jit import ModeTiming, choose_jit, faster
from keel.executors.training.precision import dtype_policy, resolve_precision

from helpers import REPO


def test_the_choice_weighs_compile_time_against_the_planned_steps():
    graph = ModeTiming(False, fixed_s=0.5, step_s=0.002)
    xla = ModeTiming(True, fixed_s=3.0, step_s=0.001)
    assert faster(graph, xla, 100) is graph  # few steps: XLA's compilation does not pay off
    assert faster(graph, xla, 10_000) is xla  # many steps: the faster step wins


def test_fixed_settings_and_tpus_skip_the_probe():
    def never(_):
        raise AssertionError("a fixed setting must not probe")

    assert choose_jit(True, never, never, 100).as_dict() == {
        "jit_compile": True,
        "setting": True,
        "reason": "set in the spec",
        "planned_steps": 100,
    }
    assert choose_jit(False, never, never, 100).jit_compile is False
    on_tpu = choose_jit(False, never, never, 100, on_tpu=True)
    assert on_tpu.jit_compile is True and on_tpu.reason.startswith("TPU")


def test_precision_defaults_per_device_and_builds_under_the_policy():
    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("auto", "tpu") == "mixed_bfloat16"
    assert resolve_precision("mixed_float16", "cpu") == "mixed_float16"
    before = keras.config.dtype_policy().name
    with dtype_policy("mixed_bfloat16"):
        layer = keras.layers.Dense(4)
        layer.build((None, 8))
    assert (layer.compute_dtype, layer.kernel.dtype) == ("bfloat16", "float32")
    assert keras.config.dtype_policy().name == before


def _train_spec(train: str):
    """A minimal spec with the given [train] body, parsed without checking files."""
    return parse_spec(
        f"""
[pipeline]
name = "p"
[data]
source = "builtin:penguins"
label = "species"
[model]
module = "m.py"
[train]
{train}
""",
        REPO / "bad.toml",
    )


def test_spec_train_keys_have_defaults_and_clear_errors():
    assert {
        k: v
        for k, v in _train_spec("").resolved()["train"].items()
        if k in ("jit_compile", "accelerator", "tpu", "precision")
    } == {"jit_compile": "auto", "accelerator": "auto", "tpu": "local", "precision": "auto"}
    assert _train_spec("jit_compile = false").train.jit_compile is False
    with pytest.raises(SpecError) as error:
        _train_spec('jit_compile = "yes"\naccelerator = "tp"\nprecision = "bf16"')
    assert str(error.value).splitlines() == [
        "bad.toml: train.jit_compile: got 'yes'; input should be \"auto\", true or false",
        "bad.toml: train.accelerator: got 'tp'; input should be 'auto', 'cpu', 'gpu' or 'tpu'",
        "bad.toml: train.precision: got 'bf16'; input should be 'auto', 'float32', 'mixed_bfloat16' or 'mixed_float16'",
    ]
