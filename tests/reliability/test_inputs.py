"""Bad specs, data files and model modules: `keel validate` / `keel run` stop before any component runs.

Each case: exit 2, one `error:` line naming the file or field and what was expected, no traceback,
and (for `keel run`) no ML Metadata store or pipeline output written.
"""

import csv
import io
from pathlib import Path

import pytest

from keel.data import datasets

from checks import one_line_error
from helpers import keel, penguin_data, penguin_spec, write_spec


def penguins_csv(directory: Path) -> Path:
    datasets.materialise("penguins", directory)
    return directory / "data.csv"


def write_module(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "user_model.py"
    path.write_text(body)
    return path


def case_malformed_toml(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[pipeline]\nname = "penguin"\n[train\nsteps = 2\n')
    return ["validate", spec], ["not valid TOML", "line"]


def case_unknown_key(tmp_path):
    return ["validate", penguin_spec(tmp_path, {"train.batch_size": None, "train.batchsize": 32})], [
        "train.batchsize: unknown key in [train] (did you mean 'batch_size'?)"
    ]


def case_wrong_type(tmp_path):
    return ["validate", penguin_spec(tmp_path, {"train.steps": "many"})], ["train.steps: got 'many'"]


def case_missing_required_key(tmp_path):
    return ["validate", penguin_spec(tmp_path, {"data.label": None})], ["data.label: required key is missing"]


def case_spec_file_missing(tmp_path):
    return ["validate", tmp_path / "nope.toml"], ["nope.toml: spec file not found"]


def case_spec_not_utf8(tmp_path):
    spec = tmp_path / "latin1.toml"
    spec.write_bytes(write_spec(spec, penguin_data(name="pingüino")).read_text().encode("latin-1"))
    return ["validate", spec], ["cannot read the spec as UTF-8 text"]


def case_empty_csv(tmp_path):
    data = tmp_path / "empty.csv"
    data.write_text("")
    return ["validate", penguin_spec(tmp_path, source=str(data))], ["empty.csv is empty"]


def case_header_only_csv(tmp_path):
    data = tmp_path / "header.csv"
    data.write_text(penguins_csv(tmp_path / "d").read_text().splitlines()[0] + "\n")
    return ["validate", penguin_spec(tmp_path, source=str(data))], ["header.csv has a header but no data rows"]


def case_non_utf8_header(tmp_path):
    data = tmp_path / "latin1.csv"
    data.write_bytes(penguins_csv(tmp_path / "d").read_text().replace("species", "espèce", 1).encode("latin-1"))
    return ["validate", penguin_spec(tmp_path, source=str(data))], ["latin1.csv is not UTF-8 text"]


def case_non_utf8_row(tmp_path):
    data = penguins_csv(tmp_path / "d")
    lines = data.read_bytes().split(b"\n")
    lines[200] = lines[200].replace(b"Biscoe", b"Bisco\xe9")
    data.write_bytes(b"\n".join(lines))
    # The header reads fine; the byte is found by `keel run` while it fingerprints the file.
    return ["run", penguin_spec(tmp_path, source=str(data)), "--workdir", tmp_path / "work"], [
        "data.csv is not UTF-8 text: byte 0xe9",
        "(line 201)",
    ]


def case_missing_label_column(tmp_path):
    data = tmp_path / "nolabel.csv"
    rows = list(csv.reader(io.StringIO(penguins_csv(tmp_path / "d").read_text())))
    index = rows[0].index("species")
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([r[:index] + r[index + 1 :] for r in rows])
    return ["validate", penguin_spec(tmp_path, source=str(data))], [
        "data.label: 'species' is not a column of",
        "expected one of: island",
    ]


def case_source_matches_nothing(tmp_path):
    return ["validate", penguin_spec(tmp_path, source=str(tmp_path / "none-*.csv"))], ["matches no files"]


def case_files_of_one_source_with_different_headers(tmp_path):
    data = tmp_path / "data"
    penguins_csv(data)
    text = (data / "data.csv").read_text()
    (data / "more.csv").write_text(text.replace("island,", "isle,", 1))
    return ["validate", penguin_spec(tmp_path, source=str(data))], [
        "data.source: more.csv has a different header than data.csv; the files ExampleGen reads together must "
        "have the same columns"
    ]


def case_schema_does_not_parse(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature {\n  name: "island"\n  tpye: BYTES\n}\n')
    return ["validate", penguin_spec(tmp_path, {"data.schema": str(schema)})], [
        "data.schema: ",
        "is not a schema.pbtxt",
        'no field named "tpye"',
    ]


def case_module_missing(tmp_path):
    return ["validate", penguin_spec(tmp_path, {"model.module": "nope.py"})], ["model.module: 'nope.py' does not exist"]


def case_module_without_build_model(tmp_path):
    module = write_module(tmp_path, "def build(hparams, features):\n    return None\n")
    spec = penguin_spec(tmp_path, {"model.module": str(module)})
    return ["run", spec, "--workdir", tmp_path / "work"], ["user_model.py does not define build_model(...)"]


def case_module_import_raises(tmp_path):
    module = write_module(tmp_path, "import keras\nraise RuntimeError('no GPU config found')\n")
    spec = penguin_spec(tmp_path, {"model.module": str(module)})
    return ["run", spec, "--workdir", tmp_path / "work"], [
        "importing user_model.py raised RuntimeError: no GPU config found"
    ]


def case_warm_start_missing(tmp_path):
    spec = penguin_spec(tmp_path, {"model.warm_start": str(tmp_path / "gone")})
    return ["validate", spec], ["model.warm_start: ", "does not exist"]


def case_span_without_span_source(tmp_path):
    return ["run", penguin_spec(tmp_path), "--workdir", tmp_path / "work", "--span", "3"], [
        "--span 3: data.source 'builtin:penguins' has no {SPAN} in it"
    ]


def case_compile_without_cloud_section(tmp_path):
    return ["compile", penguin_spec(tmp_path), "--target", "vertex", "--output", tmp_path / "p.json"], ["[cloud]"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("case_") for c in CASES])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, case):
    args, fragments = case(tmp_path)
    one_line_error(keel(*args, timeout=300), *fragments)
    work = tmp_path / "work"
    assert not (work / "metadata.sqlite").exists() and not (work / "pipeline").exists()
    assert not (tmp_path / "p.json").exists()
