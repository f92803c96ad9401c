"""Creates .venv and installs keel with the fully pinned constraints file that fits this host.

Usage: python3 tools/install.py [--stack NAME] [--python PATH] [--system]

By default it takes the newest stack this host can run. It looks for python3.13, python3.12,
python3.11, python3.10 and python3, in that order, and takes the first whose version has a stack
this host's glibc can run:
  tfx1.21-py3.13-glibc2.39  Python 3.13, glibc >= 2.39 (Debian 13, Colab)
  tfx1.21-py3.12-glibc2.39  Python 3.12, glibc >= 2.39 (Ubuntu 24.04)
  tfx1.21-py3.11-glibc2.39  Python 3.11, glibc >= 2.39
  tfx1.16-py3.11            Python 3.11, glibc >= 2.28 (Debian 12)
  tfx1.16-py3.10            Python 3.10, glibc >= 2.28 (Ubuntu 22.04)
--stack (or KEEL_STACK) picks one of these instead; --python (or KEEL_PYTHON) the interpreter.
--system installs into that interpreter itself instead of .venv (Colab, containers).
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
# Newest first: the first stack that fits the interpreter and the host is the default.
STACKS = {
    "tfx1.21-py3.13-glibc2.39": {"python": (3, 13), "glibc": (2, 39)},
    "tfx1.21-py3.12-glibc2.39": {"python": (3, 12), "glibc": (2, 39)},
    "tfx1.21-py3.11-glibc2.39": {"python": (3, 11), "glibc": (2, 39)},
    "tfx1.16-py3.11": {"python": (3, 11), "glibc": (2, 28)},
    "tfx1.16-py3.10": {"python": (3, 10), "glibc": (2, 28)},
}
INTERPRETERS = ["python3.13", "python3.12", "python3.11", "python3.10", "python3"]


def dotted(version: tuple) -> str:
    return ".".join(map(str, version))


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


def python_version(python: str) -> tuple | None:
    """(major, minor) of an interpreter, or None where it does not run (a pyenv shim of no version)."""
    result = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
    return tuple(int(p) for p in result.stdout.split()) if result.returncode == 0 else None


def has_venv(python: str) -> bool:
    """Whether the interpreter can make a venv with pip (Debian and Ubuntu ship that part separately)."""
    return subprocess.run([python, "-c", "import ensurepip, venv"], capture_output=True).returncode == 0


def stacks_for(py: tuple, glibc: tuple) -> list:
    """The stacks an interpreter of version py can run on a host with this glibc, newest first."""
    return [name for name, need in STACKS.items() if need["python"] == py and glibc >= need["glibc"]]


def requirements() -> str:
    by_glibc = {}
    for need in STACKS.values():
        by_glibc.setdefault(need["glibc"], []).append(dotted(need["python"]))
    return "; ".join(f"glibc >= {dotted(g)}: Python {', '.join(sorted(v))}" for g, v in sorted(by_glibc.items()))


class NoFit(Exception):
    """No interpreter and stack fit this host; the message says what it has and what to install."""


def interpreters(explicit: str | None, search_path: str | None = None) -> list:
    """(name, path, version, has venv) of each candidate interpreter, version None where none runs. A
    name is looked up in every directory of PATH in turn, so a pyenv shim of a version not selected
    does not hide the system's interpreter of that name further down PATH."""
    found = []
    for name in [explicit] if explicit else INTERPRETERS:
        if os.sep in name:
            paths = [name] if Path(name).exists() else []
        else:
            dirs = (search_path if search_path is not None else os.environ.get("PATH", "")).split(os.pathsep)
            paths = [str(Path(d) / name) for d in dict.fromkeys(dirs) if d and os.access(Path(d) / name, os.X_OK)]
        running = next(((path, v) for path in paths if (v := python_version(path)) is not None), None)
        if running:
            found.append((name, *running, has_venv(running[0])))
        elif paths or explicit:
            found.append((name, paths[0] if paths else None, None, False))
    return found


def choose(requested: str | None, candidates: list, glibc: tuple, need_venv: bool = True) -> tuple:
    """Returns (python path, python version, stack, reason): the first candidate interpreter with a
    stack this glibc can run (and, with need_venv, the venv module), and its newest such stack (or
    the one requested). Raises NoFit."""
    if requested and requested not in STACKS:
        raise NoFit(f"--stack {requested!r} is unknown; expected one of: {', '.join(STACKS)}")
    seen = []
    for name, path, py, venv in candidates:
        if py is None:
            seen.append(f"{name} {'does not run' if path else 'does not exist'}")
            continue
        if need_venv and not venv:
            seen.append(f"{name} is {dotted(py)} without venv (apt-get install python{dotted(py)}-venv)")
            continue
        if requested:
            need = STACKS[requested]
            if need["python"] == py:
                if glibc < need["glibc"]:
                    raise NoFit(
                        f"stack {requested} needs glibc >= {dotted(need['glibc'])}, this host has {dotted(glibc)}"
                    )
                return path, py, requested, "asked for with --stack"
        elif fitting := stacks_for(py, glibc):
            reason = f"Python {dotted(py)}, glibc {dotted(glibc)}"
            if fitting[0].startswith("tfx1.16"):
                reason += "; TFX 1.21 wheels need glibc >= 2.39"
            return path, py, fitting[0], reason
        seen.append(f"{name} is {dotted(py)}")
    found = ", ".join(seen) or f"none of {', '.join(INTERPRETERS)} on PATH"
    if requested:
        raise NoFit(
            f"stack {requested} needs Python {dotted(STACKS[requested]['python'])}; found {found}; "
            "install it or pass --python PATH"
        )
    raise NoFit(
        f"no interpreter fits this host (glibc {dotted(glibc)}; found {found}); keel's stacks need "
        f"{requirements()}: install one or pass --python PATH"
    )


def choose_here(requested: str | None, explicit_python: str | None, need_venv: bool = True) -> tuple:
    try:
        return choose(requested, interpreters(explicit_python), glibc_version(), need_venv)
    except NoFit as e:
        fail(str(e))


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def pip(python: str, *args: str) -> None:
    cmd = [python, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(cmd)
    if result.returncode != 0:
        fail(f"pip {' '.join(args[:3])} ... failed (exit {result.returncode}); see pip's output above")


def install_into(python: str, requested: str | None) -> None:
    """Installs the lock and keel into an interpreter's own site-packages (--system).

    No `pip check`: such an interpreter (a Colab runtime, say) carries packages of its own whose
    requirements are not keel's to settle."""
    python, py, stack, reason = choose_here(requested, python, need_venv=False)
    lock = ROOT / "constraints" / f"{stack}.txt"
    say(f"stack {stack} ({reason}), into {python}")
    started = time.monotonic()
    pip(python, "install", "--no-deps", "--ignore-requires-python", "-r", str(lock))
    pip(python, "install", "--no-deps", "--ignore-requires-python", str(ROOT))
    say(f"done in {time.monotonic() - started:.0f}s: keel is installed into {python}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default=os.environ.get("KEEL_STACK") or None)
    parser.add_argument("--python", default=os.environ.get("KEEL_PYTHON") or None)
    parser.add_argument(
        "--system",
        action="store_true",
        help="install into the interpreter itself (default: the one running this script), not "
        ".venv: for notebooks and containers, whose kernel or entry point is that interpreter",
    )
    args = parser.parse_args()
    if args.system:
        install_into(args.python or sys.executable, args.stack)
        return

    python, py, stack, reason = choose_here(args.stack, args.python)
    lock = ROOT / "constraints" / f"{stack}.txt"
    wanted = {"stack": stack, "python": list(py), "digest": digest(lock, ROOT / "pyproject.toml")}

    previous = json.loads(STAMP.read_text()) if STAMP.exists() else None
    if previous == wanted and (VENV / "bin" / "keel").exists():
        say(f"up to date: .venv has stack {stack} ({reason})")
        return
    say(f"stack {stack} ({reason})")
    started = time.monotonic()
    # A venv of another stack or Python, or of unknown content, is rebuilt: installing one lock
    # over another with --no-deps would leave the other's extra packages behind.
    if VENV.exists() and (previous is None or previous["stack"] != stack or previous["python"] != list(py)):
        say(f"removing .venv built for {previous['stack'] if previous else 'an unknown stack'}")
        shutil.rmtree(VENV)
    if not VENV.exists():
        made = subprocess.run([python, "-m", "venv", str(VENV)], capture_output=True, text=True)
        if made.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            why = made.stderr.strip().splitlines()[-1] if made.stderr.strip() else f"exit {made.returncode}"
            fail(f"{python} -m venv failed ({why}); on Debian or Ubuntu: apt-get install python{dotted(py)}-venv")
    # Marks the venv as this stack's, not yet complete, so an interrupted install resumes here.
    STAMP.write_text(json.dumps({**wanted, "digest": None}))
    say(
        f"installing {sum(1 for l in lock.read_text().splitlines() if '==' in l)} pinned packages "
        f"from constraints/{lock.name} (a cold install takes a few minutes)"
    )
    venv_python = str(VENV / "bin" / "python")
    pip(venv_python, "install", "--no-deps", "--ignore-requires-python", "-r", str(lock))
    # keel itself: every dependency is already there, so the resolver only checks the pins.
    pip(
        venv_python,
        "install",
        "--no-build-isolation",
        "--ignore-requires-python",
        "-c",
        str(lock),
        "-e",
        f"{ROOT}[dev]",
    )
    pip(venv_python, "check")
    STAMP.write_text(json.dumps(wanted))
    say(f"done in {time.monotonic() - started:.0f}s: .venv/bin/keel is ready")


if __name__ == "__main__":
    main()
