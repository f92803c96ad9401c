"""notebooks/colab_tpu.ipynb, executed top to bottom by nbclient on this machine's CPU, so it cannot rot."""

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import REPO

NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"


def _text(cell) -> str:
    return "".join(
        o.get("text", "") + "".join(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", [])
    )


@pytest.mark.slow  # a whole kernel and pipeline run: `make test-slow`, which CI runs after `make test`
def test_colab_notebook_runs_the_pipeline_on_cpu(tmp_path, monkeypatch):
    # The kernel inherits these: keel's checkout (no clone, no install), a scratch workdir, few steps.
    monkeypatch.setenv("KEEL_DIR", str(REPO))
    monkeypatch.setenv("KEEL_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("KEEL_NOTEBOOK_STEPS", "120")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    out = "\n".join(_text(c) for c in notebook.cells if c.cell_type == "code")
    assert "keel is installed already; nothing to install" in out
    assert "steps = 120" in out
    assert "blessed: yes" in out
    assert "training: default strategy on 1 CPU replica, float32, global batch 32; XLA " in out
    # The same model trained on JAX, exported to a TensorFlow SavedModel that agrees with it.
    assert "training: JAX " in out and "the exported TensorFlow model agrees on" in out
    assert out.count("blessed: yes") == 2
    assert (tmp_path / "work" / "metadata.sqlite").is_file()
    assert any((tmp_path / "work" / "serving" / "penguin").iterdir())
