"""The `keel` command line: one workdir rule for every command, --version, --json, help for every flag.

The parser tests run in seconds and import no TensorFlow. The rest run the real command in subprocesses
against one real penguin run laid out as `make demo` leaves it: the spec in pipelines/, its workdir in
pipelines/.keel/penguin, commands run from the directory above.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from keel import cli
from keel.core.errors import WorkdirError
from keel.core.spec import LITE_VARIANTS, load_spec
from keel.core.workdirs import find_workdirs, resolve_workdir
from keel.registry.stages import PRODUCTION, STAGES
from keel.runners.cloud import TARGETS
from keel.serving.config import DEFAULTS as SERVE

from helpers import penguin_spec


def run_keel(*args, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """The real `keel` command in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "keel.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def empty_store(workdir: Path) -> Path:
    """A real, empty SQLite ML Metadata store in `workdir` (what a workdir holds once a run has started)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(workdir / "metadata.sqlite")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    metadata_store.MetadataStore(config)
    return workdir


def options(parser: argparse.ArgumentParser, path: str = "keel"):
    """(command path, action) for every option and argument of `parser` and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from options(sub, f"{path} {name}")
        else:
            yield path, action


def subcommand(*names: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    for name in names:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


# The parser: help, --version, exit codes, choices and defaults from the library.


def test_every_option_and_argument_has_help():
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, action in options(cli.build_parser())
        if not action.help
    ]
    assert missing == []


def test_help_documents_the_exit_codes_and_the_workdir_rule_without_importing_tensorflow():
    code = (
        "import sys; from keel import cli; text = cli.build_parser().format_help(); "
        "assert 'tensorflow' not in sys.modules, 'keel --help imported TensorFlow'; print(text)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for line in [
        "0    success",
        "2    bad input",
        "3    keel monitor: the logged requests raised alerts",
        "130  interrupted",
    ]:
        assert line in text
    assert "--workdir DIR when given" in text and "pipelines/.keel/NAME" in text


def test_version_names_keel_and_the_stack_without_importing_tensorflow():
    code = (
        "import sys\nfrom keel import cli\ntry:\n    cli.main(['--version'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\nassert 'tensorflow' not in sys.modules, 'keel --version imported TensorFlow'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    from importlib import metadata

    import keel

    line = result.stdout.strip()
    assert line.startswith(
        f"keel {keel.__version__} (TFX {metadata.version('tfx')}, TensorFlow {metadata.version('tensorflow')}, "
    ), line


def test_choices_and_defaults_are_the_library_constants():
    assert option(subcommand("compile"), "--target").choices == TARGETS
    assert option(subcommand("export"), "--variants").choices == LITE_VARIANTS
    promote = option(subcommand("models", "promote"), "--to")
    assert (promote.choices, promote.default) == (STAGES, PRODUCTION)
    serve = subcommand("serve")
    for flag in [
        "--host",
        "--port",
        "--log-sample-rate",
        "--log-max-bytes",
        "--max-batch-size",
        "--batch-wait-ms",
        "--max-body-bytes",
        "--poll-seconds",
    ]:
        assert option(serve, flag).default == getattr(SERVE, flag[2:].replace("-", "_")), flag


def test_commands_that_print_a_table_take_json():
    for command in [
        ("run",),
        ("monitor",),
        ("lineage",),
        ("runs",),
        ("diff",),
        ("export",),
        ("models", "list"),
        ("models", "show"),
        ("models", "promote"),
        ("models", "rollback"),
    ]:
        assert option(subcommand(*command), "--json").help, command


def test_an_unknown_choice_is_one_usage_error_naming_the_flag(tmp_path):
    result = run_keel("compile", "x.toml", "--target", "airflow", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "argument --target: invalid choice: 'airflow'" in result.stderr.splitlines()[-1]


def test_validate_applies_set_and_a_bad_one_is_one_line(tmp_path):
    spec = penguin_spec(tmp_path)
    result = run_keel("validate", spec, "--set", "train.steps=800", "--set", "data.eval_percent=25", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "steps = 800" in result.stdout.splitlines() and "eval_percent = 25" in result.stdout.splitlines()
    bad = run_keel("validate", spec, "--set", "train.steps=-1", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["error: --set: train.steps: got -1; input should be greater than or equal to 1"]


# The workdir rule (keel.core.workdirs), on real ML Metadata stores.


def test_workdir_flag_wins_then_the_spec_then_the_only_one_found(tmp_path):
    (tmp_path / "pipelines").mkdir()
    spec = load_spec(penguin_spec(tmp_path / "pipelines"), check_files=False)
    assert resolve_workdir("elsewhere", spec, here=tmp_path) == Path("elsewhere").resolve()
    assert resolve_workdir(None, spec, here=tmp_path) == (tmp_path / "pipelines" / ".keel" / "penguin").resolve()
    demo = empty_store(tmp_path / "pipelines" / ".keel" / "penguin")
    assert resolve_workdir(here=tmp_path).resolve() == demo.resolve()
    assert resolve_workdir(here=tmp_path / "pipelines").resolve() == demo.resolve()


def test_no_workdir_or_several_is_one_line_asking_for_workdir_or_spec(tmp_path):
    with pytest.raises(WorkdirError, match=r"^no workdir found in .*; pass --workdir DIR or --spec SPEC"):
        resolve_workdir(here=tmp_path)
    (tmp_path / ".keel" / "not-a-workdir").mkdir(parents=True)  # no ML Metadata: not counted
    with pytest.raises(WorkdirError, match="no workdir found"):
        resolve_workdir(here=tmp_path)
    empty_store(tmp_path / ".keel" / "taxi")
    empty_store(tmp_path / "pipelines" / ".keel" / "penguin")
    assert [p.name for p in find_workdirs(tmp_path)] == ["taxi", "penguin"]
    with pytest.raises(WorkdirError) as raised:
        resolve_workdir(here=tmp_path)
    assert str(raised.value) == (
        f"2 workdirs found ({os.path.join('.keel', 'taxi')}, "
        f"{os.path.join('pipelines', '.keel', 'penguin')}); "
        "pick one with --workdir DIR or --spec SPEC"
    )


# The real command on a real run, laid out as `make demo` leaves it.


DEMO_OVERRIDES = ("--set", "train.steps=25", "--set", "model.hparams.learning_rate=0.02")


class Demo:
    """`keel run pipelines/penguin.toml --json --set ...` from `root`, with no --workdir."""

    def __init__(self, root: Path):
        self.root = root
        (root / "pipelines").mkdir()
        self.spec = penguin_spec(root / "pipelines", steps=20, eval_steps=2, threshold=0.0)
        self.workdir = root / "pipelines" / ".keel" / "penguin"
        self.run = run_keel("run", "pipelines/penguin.toml", "--json", *DEMO_OVERRIDES, cwd=root)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    return Demo(tmp_path_factory.mktemp("demo"))


def test_run_json_prints_only_the_summary_on_stdout(demo):
    assert demo.run.returncode == 0, demo.run.stderr[-3000:]
    summary = json.loads(demo.run.stdout)
    assert summary["pipeline"] == "penguin"
    assert Path(summary["workdir"]) == demo.workdir.resolve()
    assert {c["node_id"]: c["status"] for c in summary["components"]}["Pusher"] == "ran"
    assert summary["blessed"] is True and summary["pushed_to"]
    assert f"keel run penguin: workdir {demo.workdir.resolve()}" in demo.run.stderr  # progress on stderr


def test_set_overrides_are_applied_said_and_recorded(demo):
    assert demo.run.returncode == 0, demo.run.stderr[-3000:]
    assert "  overrides: train.steps=25, model.hparams.learning_rate=0.02 (--set; recorded with the run)" in (
        demo.run.stderr
    )
    record = json.loads(run_keel("lineage", "--json", cwd=demo.root).stdout)
    assert record["spec"]["overrides"] == {"train.steps": 25, "model.hparams.learning_rate": 0.02}
    assert record["spec"]["resolved"]["train"]["steps"] == 25
    assert record["spec"]["resolved"]["model"]["hparams"] == {"hidden": [32, 16], "learning_rate": 0.02}
    shown = run_keel("lineage", cwd=demo.root).stdout
    assert "with --set train.steps=25, model.hparams.learning_rate=0.02" in shown


def test_queries_find_the_demo_workdir_from_the_directory_above(demo):
    assert demo.run.returncode == 0, demo.run.stderr[-3000:]
    lineage = run_keel("lineage", "--json", cwd=demo.root)
    assert lineage.returncode == 0, lineage.stderr[-3000:]
    record = json.loads(lineage.stdout)
    assert str(demo.workdir.resolve()) in json.dumps(record)
    listed = run_keel("models", "list", "--json", "--spec", demo.spec, cwd=demo.root.parent)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert [row["stage"] for row in json.loads(listed.stdout)] == ["candidate"]


def test_a_second_workdir_makes_the_search_ask_which(demo, tmp_path):
    assert demo.run.returncode == 0, demo.run.stderr[-3000:]
    root = tmp_path / "project"
    (root / "pipelines" / ".keel").mkdir(parents=True)
    (root / "pipelines" / ".keel" / "penguin").symlink_to(demo.workdir.resolve())
    (root / ".keel" / "penguin-copy").mkdir(parents=True)
    shutil.copy(demo.workdir / "metadata.sqlite", root / ".keel" / "penguin-copy" / "metadata.sqlite")
    result = run_keel("lineage", cwd=root)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: 2 workdirs found ({os.path.join('.keel', 'penguin-copy')}, "
        f"{os.path.join('pipelines', '.keel', 'penguin')}); pick one with --workdir DIR or --spec SPEC"
    ]


def test_the_dict_forms_behind_json_are_plain_json(tmp_path):
    from keel.export.exporter import LiteExport
    from keel.export.parity import Measurement
    from keel.monitoring import MonitorReport
    from keel.monitoring.checks import Alert

    reference = Measurement("savedmodel", accuracy=0.98)
    int8 = Measurement("int8", accuracy=0.97, size_bytes=361_096, accuracy_drop=0.01, passed=True)
    export = LiteExport(tmp_path / "lite", int8, reference, [int8], {"chosen": "int8", "saved_model": "sm"})
    shown = json.loads(json.dumps(export.to_dict()))
    assert shown["directory"] == str(tmp_path / "lite") and shown["chosen"] == "int8"
    assert [v["name"] for v in shown["variants"]] == ["int8"] and shown["savedmodel"]["accuracy"] == 0.98

    alert = Alert("island", "skew", "COMPARATOR_L_INFTY_HIGH", "The Linfty distance ... is 0.5")
    report = MonitorReport(
        {"model": "penguin", "alerts": [alert.__dict__]}, [alert], tmp_path / "report.html", tmp_path / "report.json"
    )
    shown = json.loads(json.dumps(report.to_dict()))
    assert shown["alerts"][0]["feature"] == "island"
    assert (shown["report_html"], shown["report_json"]) == (
        str(tmp_path / "report.html"),
        str(tmp_path / "report.json"),
    )
