"""Which workdir a command acts on: one rule for every `keel` command.

A workdir is the directory `keel run` writes: the pipeline root, ML Metadata (`metadata.sqlite`),
`serving/`, `data/` and `logs/`. `resolve_workdir` picks it, first match wins:

1. `--workdir DIR`, when given;
2. the spec's default workdir, `.keel/NAME` beside the spec, when a spec is given;
3. otherwise the one workdir found under `.keel/` in the current directory or one directory down
   (`pipelines/.keel/penguin` after `make demo`, run from the repository root). Several found is
   an error listing them; so is none.

Commands that read a workdir (lineage, models, diff, serve, monitor, export) ask for an existing
one: the directory must hold ML Metadata. Only `keel run` may name a workdir that does not exist yet.
"""

import os
from pathlib import Path

from keel.core.errors import WorkdirError

METADATA_FILE = "metadata.sqlite"
SEARCHED = (".keel/*", "*/.keel/*")


def is_workdir(path: Path) -> bool:
    """Whether `path` holds a keel run's ML Metadata."""
    return (Path(path) / METADATA_FILE).is_file()


def find_workdirs(here: Path) -> list[Path]:
    """Every workdir under `.keel/` in `here` or one directory down, sorted."""
    found = {p.resolve() for pattern in SEARCHED for p in Path(here).glob(pattern) if is_workdir(p)}
    return sorted(found)


def resolve_workdir(workdir: str | Path | None = None, spec=None, here: Path | None = None,
                    must_exist: bool = True) -> Path:
    """The workdir a command acts on (see the module docstring for the rule), as an absolute path.

    Args:
        workdir: the `--workdir` value, or None.
        spec: a loaded `keel.core.spec.Spec`, or None.
        here: where to look when neither is given (default: the current directory).
        must_exist: require ML Metadata in the chosen directory (every command but `keel run`).

    Raises:
        WorkdirError: the chosen directory holds no ML Metadata, or the search found none or several.
    """
    if workdir is not None:
        chosen, shown = Path(workdir).expanduser().resolve(), f"--workdir {workdir}"
    elif spec is not None:
        chosen, shown = spec.default_workdir().resolve(), f"{spec.path.name}'s workdir {spec.default_workdir()}"
    else:
        here = Path.cwd() if here is None else Path(here)
        found = find_workdirs(here)
        if len(found) == 1:
            return found[0]
        if not found:
            raise WorkdirError(f"no workdir found in {here}/.keel/ or {here}/*/.keel/; pass --workdir DIR or "
                               "--spec SPEC (`keel run SPEC` creates the spec's workdir)")
        listed = ", ".join(os.path.relpath(p, here) for p in found)
        raise WorkdirError(f"{len(found)} workdirs found ({listed}); pick one with --workdir DIR or --spec SPEC")
    if must_exist and not is_workdir(chosen):
        raise WorkdirError(f"{shown}: no ML Metadata there ({METADATA_FILE}); expected the workdir of a "
                           "`keel run` (run the spec first, or pass --workdir DIR)")
    return chosen
