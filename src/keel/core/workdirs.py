"""Which workdir a command acts on: one rule for every `keel` command.

A workdir is the directory `keel run` writes: the pipeline root, ML Metadata (`metadata.sqlite`),
`serving/`, `data/` and `logs/`. `resolve_workdir` picks it, first match wins:

1. `--workdir DIR`, when given;
2. the spec's default workdir, `.keel/NAME` beside the spec, when a spec is given;
3. otherwise the one workdir found under `.keel/` in the current directory or one directory down
   (`pipelines/.keel/penguin` after `make demo`, run from the repository root). Several found is
   an error listing them; so is none.

A directory given (1, 2) is taken as it is: `keel run` creates it, and the commands that read one
say what is missing there (no ML Metadata store, no serving/ directory).
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
    """Every workdir under `.keel/` in `here` or one directory down, as absolute paths below `here`, sorted.

    Two paths to one directory (a symbolic link) count once.
    """
    found: dict[Path, Path] = {}
    for pattern in SEARCHED:
        for path in sorted(Path(here).absolute().glob(pattern)):
            if is_workdir(path):
                found.setdefault(path.resolve(), path)
    return sorted(found.values())


def resolve_workdir(workdir: str | Path | None = None, spec=None, here: Path | None = None) -> Path:
    """The workdir a command acts on (see the module docstring for the rule), as an absolute path.

    Args:
        workdir: the `--workdir` value, or None.
        spec: a loaded `keel.core.spec.Spec`, or None.
        here: where to search when neither is given (default: the current directory).

    Raises:
        WorkdirError: neither was given and the search found no workdir, or several.
    """
    if workdir is not None:
        return Path(workdir).expanduser().resolve()
    if spec is not None:
        return spec.default_workdir().resolve()
    here = Path.cwd() if here is None else Path(here)
    found = find_workdirs(here)
    if len(found) == 1:
        return found[0]
    if not found:
        raise WorkdirError(
            f"no workdir found in {here}/.keel/ or {here}/*/.keel/; pass --workdir DIR or "
            "--spec SPEC (`keel run SPEC` creates the spec's workdir)"
        )
    listed = ", ".join(os.path.relpath(p, here) for p in found)
    raise WorkdirError(f"{len(found)} workdirs found ({listed}); pick one with --workdir DIR or --spec SPEC")
