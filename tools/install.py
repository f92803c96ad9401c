"""Creates .venv and installs keel with the fully pinned constraints file that fits this host.

Usage: python3 tools/install.py [--stack NAME] [--python PATH]

The stack is chosen from the Python version and the host's glibc:
  tfx1.16-py3.11            Python 3.11, glibc >= 2.28 (the default; what CI runs)
  tfx1.16-py3.10            Python 3.10, glibc >= 2.28
  tfx1.21-py3.11-glibc2.39  Python 3.11, glibc >= 2.39; opt-in with --stack (resolved, not yet
                            tested by keel's suite)
Every package is pinned, and pip installs the lock with --no-deps, so it never resolves or
backtracks. A second run with the same lock and pyproject finishes in about a second.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / "keel-install.json"
STACKS = {
    "tfx1.16-py3.11": {"python": (3, 11), "glibc": (2, 28)},
    "tfx1.16-py3.10": {"python": (3, 10), "glibc": (2, 28)},
    "tfx1.21-py3.11-glibc2.39": {"python": (3, 11), "glibc": (2, 39)},
}
DEFAULT_FOR_PYTHON = {(3, 11): "tfx1.16-py3.11", (3, 10): "tfx1.16-py3.10"}


def say(message: str) -> None:
    print(f"install: {message}", flush=True)


def fail(message: str) -> None:
    print(f"install: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def glibc_version() -> tuple:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    except (ValueError, OSError, AttributeError):
        return (0, 0)
    return tuple(int(p) for p in version.split(".")[:2]) if name == "glibc" else (0, 0)


def python_version(python: str) -> tuple:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(int(p) for p in out.split())


def find_python(explicit: str | None) -> tuple:
    """Returns (path, version) of the first supported interpreter: --python, then 3.11, then 3.10."""
    candidates = [explicit] if explicit else ["python3.11", "python3.10", "python3"]
    for name in candidates:
        path = shutil.which(name) or (name if Path(name).exists() else None)
        if path:
            version = python_version(path)
            if version in DEFAULT_FOR_PYTHON:
                return path, version
            if explicit:
                fail(f"--python {explicit} is Python {version[0]}.{version[1]}; keel's stacks need 3.10 or 3.11")
    fail("no Python 3.11 or 3.10 found on PATH; install one or pass --python PATH")


def choose_stack(requested: str | None, py: tuple, glibc: tuple) -> tuple:
    """Returns (stack, reason)."""
    dotted = lambda v: ".".join(map(str, v))  # noqa: E731
    if requested:
        if requested not in STACKS:
            fail(f"--stack {requested!r} is unknown; expected one of: {', '.join(STACKS)}")
        need = STACKS[requested]
        if need["python"] != py:
            fail(f"stack {requested} needs Python {dotted(need['python'])}, found {dotted(py)}")
        if glibc < need["glibc"]:
            fail(f"stack {requested} needs glibc >= {dotted(need['glibc'])}, this host has {dotted(glibc)}")
        return requested, "asked for with --stack"
    stack = DEFAULT_FOR_PYTHON[py]
    if glibc < STACKS[stack]["glibc"]:
        fail(f"glibc {dotted(glibc)} is older than 2.28, which TensorFlow 2.16 and LiteRT wheels need")
    reason = f"Python {dotted(py)}, glibc {dotted(glibc)}"
    if py == (3, 11) and glibc >= (2, 39):
        reason += "; this host could also take tfx1.21-py3.11-glibc2.39 (--stack, untested)"
    elif glibc < (2, 39):
        reason += "; TFX 1.21 wheels need glibc >= 2.39"
    return stack, reason


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def pip(*args: str) -> None:
    cmd = [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(cmd)
    if result.returncode != 0:
        fail(f"pip {' '.join(args[:3])} ... failed (exit {result.returncode}); see pip's output above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default=os.environ.get("KEEL_STACK") or None)
    parser.add_argument("--python", default=os.environ.get("KEEL_PYTHON") or None)
    args = parser.parse_args()

    python, py = find_python(args.python)
    stack, reason = choose_stack(args.stack, py, glibc_version())
    lock = ROOT / "constraints" / f"{stack}.txt"
    wanted = {"stack": stack, "python": list(py), "digest": digest(lock, ROOT / "pyproject.toml")}

    if STAMP.exists() and json.loads(STAMP.read_text()) == wanted and (VENV / "bin" / "keel").exists():
        say(f"up to date: .venv has stack {stack} ({reason})")
        return
    say(f"stack {stack} ({reason})")
    started = time.monotonic()
    if VENV.exists() and (not (VENV / "bin" / "python").exists() or python_version(str(VENV / "bin" / "python")) != py):
        say("removing .venv built for another Python")
        shutil.rmtree(VENV)
    if not VENV.exists():
        subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    STAMP.unlink(missing_ok=True)
    say(f"installing {sum(1 for l in lock.read_text().splitlines() if '==' in l)} pinned packages "
        f"from constraints/{lock.name} (a cold install takes a few minutes)")
    pip("install", "--no-deps", "--ignore-requires-python", "-r", str(lock))
    # keel itself: every dependency is already there, so the resolver only checks the pins.
    pip("install", "--no-build-isolation", "--ignore-requires-python", "-c", str(lock), "-e", f"{ROOT}[dev]")
    pip("check")
    STAMP.write_text(json.dumps(wanted))
    say(f"done in {time.monotonic() - started:.0f}s: .venv/bin/keel is ready")


if __name__ == "__main__":
    main()
