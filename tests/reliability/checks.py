"""What every reliability case asserts: one plain error line, no traceback, nothing half-written."""

import subprocess
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

Execution, Artifact = metadata_store_pb2.Execution, metadata_store_pb2.Artifact


def one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    """Asserts the command exited `code` with exactly one `error:` line holding every fragment; returns it."""
    output = result.stdout + result.stderr
    assert result.returncode == code, f"exit {result.returncode}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def nothing_half_written(workdir: Path) -> None:
    """ML Metadata marks no output of an unfinished execution LIVE, and every version serving would
    consider (a numbered directory with saved_model.pb) is a complete, loadable SavedModel."""
    from keel.mlmd import store as metadata
    from keel.serving.versions import versions

    if metadata.store_path(workdir).exists():
        store = metadata.open_store(workdir)
        for execution in store.get_executions():
            if execution.last_known_state in (Execution.COMPLETE, Execution.CACHED):
                continue
            for found in metadata.outputs(store, execution.id).values():
                for artifact in found:
                    assert artifact.state != Artifact.LIVE, (
                        f"{metadata.node_id(store, execution)} ended {execution.last_known_state} "
                        f"but its output {artifact.uri} is LIVE"
                    )
    for root in sorted((workdir / "serving").glob("*")):
        for version in versions(root):
            assert (root / version / "variables" / "variables.index").is_file(), f"{root / version} is partial"


def node_states_of_all_runs(workdir: Path) -> list[tuple[str, str]]:
    """(node id, state name) of every execution in the workdir, oldest first."""
    from keel.mlmd import store as metadata

    store = metadata.open_store(workdir)
    executions = sorted(store.get_executions(), key=lambda e: e.id)
    return [(metadata.node_id(store, e), metadata.STATE_NAMES[e.last_known_state]) for e in executions]
