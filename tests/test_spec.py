"""`keel validate`: spec errors on the command line (the errors themselves: tests/unit/test_spec.py)."""

from helpers import REPO, keel, penguin_spec


def test_cli_validate_errors_exit_2_with_one_line_and_no_traceback(tmp_path):
    result = keel("validate", penguin_spec(tmp_path, {"train.steps": "many"}))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: penguin.toml: train.steps: got 'many'; input should be a valid integer, unable to parse string as an "
        "integer"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_validate_prints_the_resolved_spec():
    result = keel("validate", REPO / "pipelines" / "penguin.toml")
    assert result.returncode == 0, result.stderr
    assert "eval_percent = 20" in result.stdout and "seed = 42" in result.stdout
