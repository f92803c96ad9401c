"""tools/install.py's choice of stack: the newest the host can run, from the interpreters it has."""

import importlib.util
import sys

import pytest

from helpers import REPO

_spec = importlib.util.spec_from_file_location("keel_install", REPO / "tools" / "install.py")
install = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install)

DEBIAN_12, DEBIAN_13, UBUNTU_2204, UBUNTU_2404 = (2, 36), (2, 41), (2, 35), (2, 39)


def found(*versions, venv=True):
    """Candidates as interpreters() gives them: (name, path, version, has venv), None for one that does
    not run."""
    return [
        (f"python{v[0]}.{v[1]}" if v else "python3.13", f"/usr/bin/python{i}", v, venv) for i, v in enumerate(versions)
    ]


@pytest.mark.parametrize(
    "glibc, versions, stack",
    [
        (DEBIAN_13, [(3, 13)], "tfx1.21-py3.13-glibc2.39"),
        (UBUNTU_2404, [(3, 12)], "tfx1.21-py3.12-glibc2.39"),
        (UBUNTU_2404, [(3, 13), (3, 12)], "tfx1.21-py3.13-glibc2.39"),
        (DEBIAN_13, [(3, 11)], "tfx1.21-py3.11-glibc2.39"),
        (DEBIAN_12, [(3, 11)], "tfx1.16-py3.11"),
        (UBUNTU_2204, [(3, 10)], "tfx1.16-py3.10"),
        # a pyenv 3.13 on Debian 12 has no stack there: the next interpreter is taken
        (DEBIAN_12, [(3, 13), (3, 12), (3, 11)], "tfx1.16-py3.11"),
        (DEBIAN_12, [None, (3, 11)], "tfx1.16-py3.11"),
    ],
)
def test_the_newest_stack_the_host_can_run_is_the_default(glibc, versions, stack):
    path, py, chosen, reason = install.choose(None, found(*versions), glibc)
    assert chosen == stack
    assert py == install.STACKS[stack]["python"]
    assert f"glibc {glibc[0]}.{glibc[1]}" in reason


def test_a_host_with_no_fitting_interpreter_gets_one_line_naming_what_it_has_and_needs():
    with pytest.raises(install.NoFit) as e:
        install.choose(None, found((3, 13), (3, 9)), DEBIAN_12)
    message = str(e.value)
    assert "glibc 2.36" in message and "python3.13 is 3.13" in message and "python3.9 is 3.9" in message
    assert "glibc >= 2.28: Python 3.10, 3.11; glibc >= 2.39: Python 3.11, 3.12, 3.13" in message
    assert "\n" not in message


def test_an_interpreter_without_venv_is_passed_over_naming_the_package_to_install():
    candidates = found((3, 13), venv=False) + found((3, 11))
    assert install.choose(None, candidates, DEBIAN_13)[2] == "tfx1.21-py3.11-glibc2.39"
    assert install.choose(None, candidates, DEBIAN_13, need_venv=False)[2] == "tfx1.21-py3.13-glibc2.39"
    with pytest.raises(install.NoFit, match=r"python3.13 is 3.13 without venv \(apt-get install python3.13-venv\)"):
        install.choose(None, found((3, 13), venv=False), DEBIAN_13)


def test_a_requested_stack_needs_its_python_and_glibc():
    assert install.choose("tfx1.16-py3.11", found((3, 13), (3, 11)), DEBIAN_13)[2] == "tfx1.16-py3.11"
    with pytest.raises(install.NoFit, match="needs glibc >= 2.39, this host has 2.36"):
        install.choose("tfx1.21-py3.11-glibc2.39", found((3, 11)), DEBIAN_12)
    with pytest.raises(install.NoFit, match="needs Python 3.12; found python3.13 is 3.13"):
        install.choose("tfx1.21-py3.12-glibc2.39", found((3, 13)), DEBIAN_13)
    with pytest.raises(install.NoFit, match="unknown; expected one of: tfx1.21-py3.13-glibc2.39"):
        install.choose("tfx1.22", found((3, 13)), DEBIAN_13)


def test_every_stack_has_a_lock_that_pins_everything():
    for stack in install.STACKS:
        lines = [
            l
            for l in (REPO / "constraints" / f"{stack}.txt").read_text().splitlines()
            if l.strip() and not l.startswith("#")
        ]
        assert lines and all("==" in l for l in lines), stack


def test_a_shim_that_does_not_run_does_not_hide_the_interpreter_further_down_path(tmp_path):
    shims, system = tmp_path / "shims", tmp_path / "usr-bin"
    shims.mkdir(), system.mkdir()
    (shims / "python3.13").write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    (shims / "python3.13").chmod(0o755)
    (system / "python3.13").symlink_to(sys.executable)
    found = {
        name: (path, version, venv)
        for name, path, version, venv in install.interpreters(None, search_path=f"{shims}:{system}")
    }
    assert found["python3.13"] == (str(system / "python3.13"), sys.version_info[:2], True)
    assert "python3.12" not in found
    (system / "python3.13").unlink()
    ((name, path, version, venv),) = [
        c for c in install.interpreters(None, search_path=str(shims)) if c[0] == "python3.13"
    ]
    assert (path, version, venv) == (str(shims / "python3.13"), None, False)
