"""keel.pipeline.config: each component's config built from the spec, written and read back unchanged."""

import json

import pytest

from keel.core.errors import KeelError
from keel.core.spec import load_spec
from keel.pipeline import config

from helpers import REPO, penguin_data, write_spec

PREPROCESSING = "def preprocessing_fn(inputs):\n    return inputs\n"


def spec_with(tmp_path, overrides: dict | None = None):
    return load_spec(write_spec(tmp_path / "p.toml", penguin_data(), overrides))


def test_every_config_survives_encode_and_decode(tmp_path):
    spec = spec_with(tmp_path, {"export.lite.variants": ["float32", "int8"]})
    code = config.model_code(spec, "/image/models/tabular.py")
    for built in [
        config.gate_config(spec),
        config.transform_config(spec, code),
        config.trainer_config(spec, code),
        config.lite_export_config(spec),
    ]:
        written = json.dumps(config.encode(built), sort_keys=True)
        assert config.decode(type(built), written) == built
        assert config.decode(type(built), json.loads(written)) == built


def test_the_trainer_config_carries_the_executor_side_module_and_the_train_section(tmp_path):
    spec = spec_with(tmp_path, {"train.batch_size": 16, "train.accelerator": "cpu"})
    trainer = config.trainer_config(spec, config.model_code(spec, "/image/models/tabular.py"))
    assert trainer.module == "/image/models/tabular.py" and len(trainer.module_sha256) == 64
    assert (trainer.batch_size, trainer.accelerator, trainer.label) == (16, "cpu", "species")


def test_the_transform_config_names_the_module_only_when_it_defines_preprocessing_fn(tmp_path):
    spec = spec_with(tmp_path)
    plain = config.transform_config(spec, config.model_code(spec, "m.py"))
    assert plain.preprocessing_module is None and plain.preprocessing_sha256 is None
    module = tmp_path / "with_preprocessing.py"
    module.write_text((REPO / "models" / "tabular.py").read_text() + "\n\n" + PREPROCESSING)
    own = spec_with(tmp_path, {"model.module": str(module)})
    custom = config.transform_config(own, config.model_code(own, "m.py"))
    assert custom.preprocessing_module == "m.py" and len(custom.preprocessing_sha256) == 64


def test_decode_ignores_the_orchestrators_keys_and_names_what_is_missing(tmp_path):
    spec = spec_with(tmp_path)
    gate = config.gate_config(spec)
    assert config.decode(config.GateConfig, {**config.encode(gate), "ai_platform_enable_vertex": True}) == gate
    with pytest.raises(KeelError, match="GateConfig: the component's config lacks numeric"):
        config.decode(config.GateConfig, {"label": "species", "categorical": []})


def test_no_lite_config_without_an_export_lite_section(tmp_path):
    assert config.lite_export_config(spec_with(tmp_path)) is None
