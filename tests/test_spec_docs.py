"""docs/spec.md is generated from keel.core.spec: it must be current, and every key must be described."""

import subprocess
import sys

from keel.core import spec_docs
from keel.core.spec import Spec


def _keys(model, prefix=""):
    for name, field in model.model_fields.items():
        inner = spec_docs._models(field.annotation)
        if inner:
            yield from _keys(inner[0], f"{prefix}{field.alias or name}.")
        if prefix:  # the top-level fields are sections, described by their models' docstrings
            yield f"{prefix}{field.alias or name}", field


def test_docs_spec_md_is_current():
    assert spec_docs.DOCS.read_text(encoding="utf-8") == spec_docs.render(), (
        "docs/spec.md is stale: run `make docs` (python -m keel.core.spec_docs) and commit it"
    )


def test_every_key_and_section_is_described():
    undescribed = [path for path, field in _keys(Spec) if not field.description]
    assert undescribed == []
    sections = [f.annotation for f in Spec.model_fields.values()]
    assert all(spec_docs._models(s)[0].__doc__ for s in sections)


def test_check_flag_reports_a_stale_file_and_imports_no_tensorflow(tmp_path):
    stale = tmp_path / "spec.md"
    stale.write_text("# an old reference\n")
    code = (
        "import sys; from keel.core import spec_docs; rc = spec_docs.main(['--check', '--out', sys.argv[1]]); "
        "assert 'tensorflow' not in sys.modules; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(stale)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"{stale} is stale: run `make docs` (python -m keel.core.spec_docs)"
    current = subprocess.run(
        [sys.executable, "-m", "keel.core.spec_docs", "--check"], capture_output=True, text=True, timeout=60
    )
    assert current.returncode == 0, current.stderr
