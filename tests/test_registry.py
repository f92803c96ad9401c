"""The registry over pushed versions, on a copy of the shared penguin workdir's real ML Metadata."""

import json
import shutil

import pytest

from keel import cli
from keel.mlmd import store as metadata
from keel.registry import stages as registry

from helpers import keel


@pytest.fixture()
def workdir(penguin_runs, tmp_path):
    """The penguin runs' ML Metadata (two pushed versions, then an unblessed run), copied so stages stay local."""
    shutil.copy(metadata.store_path(penguin_runs.workdir), metadata.store_path(tmp_path))
    return tmp_path


def stages(workdir) -> dict[str, str]:
    """Version -> stage, read from the PushedModel artifacts in ML Metadata."""
    store = metadata.open_store(workdir)
    return {
        metadata.custom(a, "pushed_version"): metadata.custom(a, registry.STAGE, "candidate")
        for a in store.get_artifacts_by_type("PushedModel")
        if metadata.custom(a, "pushed", 0)
    }


def test_list_shows_every_pushed_version_with_metrics(penguin_runs, workdir):
    rows = registry.list_versions(workdir)
    expected = [p.rsplit("/", 1)[-1] for p in penguin_runs.versions_after_steps_changed]
    assert [r.version for r in rows] == expected and [r.index for r in rows] == [1, 2]
    assert {r.stage for r in rows} == {"candidate"}
    assert all(r.metrics["sparse_categorical_accuracy"] >= 0.9 for r in rows)
    assert registry.production_version(workdir, "penguin") is None


def test_promote_and_rollback_round_trip(workdir):
    first, second = (r.version for r in registry.list_versions(workdir))
    assert registry.promote(workdir, "1").stage == "production"
    assert registry.production_version(workdir, "penguin") == first
    registry.promote(workdir, second)
    assert stages(workdir) == {first: "archived", second: "production"}
    assert registry.production_version(workdir, "penguin") == second
    assert registry.production_version(workdir, "another-model") is None

    old, new = registry.rollback(workdir)
    assert (old.version, new.version) == (second, first)
    assert stages(workdir) == {first: "production", second: "archived"}
    with pytest.raises(registry.RegistryError, match=f"nothing to roll back to: version {first} is the first"):
        registry.rollback(workdir)
    registry.promote(workdir, second)  # promoting again after a rollback makes it rollback-able once more
    registry.rollback(workdir)
    assert registry.production_version(workdir, "penguin") == first


def test_models_cli_round_trip_and_unknown_version(workdir, capsys):
    first, second = (r.version for r in registry.list_versions(workdir))

    def models(*args: str) -> tuple[int, str, str]:
        code = cli.main(["models", *args, "--workdir", str(workdir)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert models("promote", second) == (0, f"version {second} (#2) is now production\n", "")
    code, out, _ = models("list")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["#", "version", "stage", "pushed"]
    assert lines[1].split()[:3] == ["1", first, "candidate"] and lines[2].split()[:3] == ["2", second, "production"]

    unknown = keel("models", "promote", "99", "--workdir", workdir)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        f"error: model version '99' is not in the registry; expected an index or version: 1 ({first}), 2 ({second})"
    ]
    code, _, err = models("rollback")
    assert code == 2 and err.startswith("error: nothing to roll back to")
    code, out, _ = models("show", "1", "--json")
    shown = json.loads(out)
    assert shown["stage"] == "candidate" and shown["lineage"]["training"]["steps"] == 200


def test_production_version_without_a_store_is_none(tmp_path):
    assert registry.production_version(tmp_path, "penguin") is None
