"""`keel doctor`: is a workdir whole? Its ML Metadata store, the artifacts it lists, the pushed versions.

Each check returns one plain-words line per problem (empty when healthy):
- the store: the SQLite file opens, is not damaged and not locked (keel.mlmd.store.check_sqlite);
- consistency: no execution left RUNNING by a killed run (while no run holds the workdir), no output
  of an unfinished execution marked LIVE;
- artifacts: every LIVE artifact's directory exists on disk;
- pushed versions under serving/NAME/: each is complete (has saved_model.pb) and listed in ML
  Metadata as a pushed model. A partial one is what a killed push leaves (serving ignores it and
  the next `keel run` removes it); a complete one ML Metadata does not list is what a kill between
  the copy and TFX's publish leaves, and serving would pick it up.
"""

import dataclasses
import fcntl
import shutil
from pathlib import Path

from keel.core.errors import KeelError
from keel.mlmd import store as metadata

Execution, Artifact = metadata.Execution, metadata.Artifact
SAVED_MODEL = "saved_model.pb"  # TFX's Pusher copies it last; keel serves only directories that have it


@dataclasses.dataclass
class Report:
    """What `keel doctor` found in one workdir."""

    workdir: Path
    problems: list[str]
    checked: dict[str, int]  # what was looked at: executions, live artifacts, pushed versions

    def to_dict(self) -> dict:
        return {"workdir": str(self.workdir), "healthy": not self.problems, **self.checked, "problems": self.problems}

    def render(self) -> str:
        seen = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.checked.items())
        if not self.problems:
            return f"{self.workdir}: healthy ({seen})"
        return "\n".join(self.problems)


def run_active(workdir: Path) -> bool:
    """Whether a `keel run` holds the workdir's lock now (keel.runners.lock)."""
    lock = Path(workdir) / ".lock"
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _local(uri: str) -> Path | None:
    return Path(uri) if uri and "://" not in uri else None


def version_dirs(workdir: Path) -> list[Path]:
    """Every numbered directory under WORKDIR/serving/NAME/ (TF Serving's version layout), sorted."""
    serving = Path(workdir) / "serving"
    if not serving.is_dir():
        return []
    return sorted(p for model in serving.iterdir() if model.is_dir() for p in model.iterdir() if p.name.isdigit())


def pushed_versions(store) -> set[tuple[str, str]]:
    """(model name, version) of every version ML Metadata lists as pushed (the Pusher's `pushed_destination`).

    By name, not by path, so a workdir copied or moved elsewhere still matches its records.
    """
    found = set()
    for artifact in store.get_artifacts_by_type("PushedModel"):
        path = (
            _local(metadata.custom(artifact, "pushed_destination", "")) if metadata.custom(artifact, "pushed") else None
        )
        if path is not None:
            found.add((path.parent.name, path.name))
    return found


def _consistency(store, workdir: Path) -> tuple[list[str], int]:
    problems = []
    executions = store.get_executions()
    active = run_active(workdir)
    for execution in executions:
        state = execution.last_known_state
        node = metadata.node_id(store, execution)
        if state in (Execution.NEW, Execution.RUNNING) and not active:
            problems.append(
                f"execution {execution.id} ({node}) is {metadata.STATE_NAMES[state]} but no run is active "
                "(a killed run): the next `keel run` marks it CANCELED"
            )
        if state in metadata.FINISHED or state in (Execution.NEW, Execution.RUNNING):
            continue
        for found in metadata.outputs(store, execution.id).values():
            problems += [
                f"artifact {a.id} ({a.uri}) is LIVE but {node} ended {metadata.STATE_NAMES[state]}"
                for a in found
                if a.state == Artifact.LIVE
            ]
    return problems, len(executions)


def _artifacts_on_disk(store) -> tuple[list[str], int]:
    live = [a for a in store.get_artifacts() if a.state == Artifact.LIVE and _local(a.uri) is not None]
    missing = [a for a in live if not _local(a.uri).exists()]
    return [f"artifact {a.id} is LIVE in ML Metadata but {a.uri} does not exist" for a in missing], len(live)


def _versions(store, workdir: Path) -> tuple[list[str], int]:
    listed = pushed_versions(store)
    problems = []
    found = version_dirs(workdir)
    for directory in found:
        if not (directory / SAVED_MODEL).is_file():
            problems.append(
                f"{directory}: a partial version (no {SAVED_MODEL}), left by an interrupted push; serving ignores "
                "it and the next `keel run` removes it"
            )
        elif (directory.parent.name, directory.name) not in listed:
            problems.append(
                f"{directory}: a complete version that ML Metadata does not list as pushed (a push cut off "
                "before TFX recorded it); serving would pick it up: delete it, or keep it knowing no run produced it"
            )
    return problems, len(found)


def doctor(workdir: Path) -> Report:
    """Checks the workdir (see the module docstring); raises KeelError only when it is not a keel workdir."""
    workdir = Path(workdir)
    path = metadata.store_path(workdir)
    if not path.exists():
        raise KeelError(f"{workdir}: no ML Metadata store here (run `keel run SPEC` first)")
    try:
        store = metadata.open_store(workdir)
    except KeelError as e:
        return Report(workdir, [str(e)], {})
    problems, checked = [], {}
    for name, check in (
        ("executions", lambda: _consistency(store, workdir)),
        ("live_artifacts", lambda: _artifacts_on_disk(store)),
        ("pushed_versions", lambda: _versions(store, workdir)),
    ):
        found, checked[name] = check()
        problems += found
    return Report(workdir, problems, checked)


def remove_partial_versions(workdir: Path) -> list[Path]:
    """Deletes the version directories an interrupted push left without saved_model.pb; returns them.

    Only safe while no run is active in the workdir (the caller holds its lock). A directory ML
    Metadata lists as pushed is never removed.
    """
    store_file = metadata.store_path(workdir)
    listed = pushed_versions(metadata.open_store(workdir)) if store_file.exists() else set()
    removed = []
    for directory in version_dirs(workdir):
        if not (directory / SAVED_MODEL).is_file() and (directory.parent.name, directory.name) not in listed:
            shutil.rmtree(directory)
            removed.append(directory)
    return removed
