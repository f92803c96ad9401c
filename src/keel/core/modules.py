"""Loads user model code by file path (never as an importable package named `models`)."""

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from keel.core.errors import ModelCodeError
from keel.core.fingerprint import file_sha256


def module_sha256(path: str | Path) -> str:
    """The model module's sha256: the code part of a model's fingerprint."""
    return file_sha256(path)


def code_provenance(path: str | Path) -> dict:
    """The model module's path and sha256, and the git commit it is at when it lives in a repository."""
    path = Path(path)

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", "-C", str(path.parent), *args],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", path.name) if commit else None
    return {
        "module": str(path),
        "module_sha256": module_sha256(path),
        "git_commit": commit,
        "module_modified_since_commit": bool(status) if commit else None,
    }


def load_module(path: str | Path) -> ModuleType:
    """Imports the Python file at `path` under a name derived from its content hash."""
    path = Path(path)
    if not path.is_file():
        raise ModelCodeError(f"model.module: {path} does not exist")
    name = f"keel_user_{path.stem}_{module_sha256(path)[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: report it as theirs, with where it failed
        raise ModelCodeError(f"model.module: importing {path.name} raised {e.__class__.__name__}: {e}") from e
    sys.modules[name] = module
    return module


def require_function(module: ModuleType, name: str, path: str | Path):
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ModelCodeError(f"model.module: {Path(path).name} does not define {name}(...)")
    return fn
