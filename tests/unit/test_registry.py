"""Registry stages: numbering, lookup, promote, archive and rollback on a real ML Metadata store (SQLite)."""

from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from keel.registry.stages import (
    ARCHIVED,
    CANDIDATE,
    PRODUCTION,
    Entry,
    RegistryError,
    find,
    production_version,
    promote,
    render_list,
    rollback,
    versions,
)


def new_store(workdir: Path) -> metadata_store.MetadataStore:
    """A fresh SQLite store where keel looks for one (WORKDIR/metadata.sqlite)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(workdir / "metadata.sqlite")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def push(store, workdir: Path, version: str, pushed: bool = True, model: str = "penguin") -> None:
    """Records a PushedModel artifact as TFX's Pusher does: `pushed`, version and destination properties."""
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="PushedModel"))
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=str(workdir / "pipeline" / "Pusher" / version))
    artifact.custom_properties["pushed"].int_value = int(pushed)
    if pushed:
        artifact.custom_properties["pushed_version"].string_value = version
        artifact.custom_properties["pushed_destination"].string_value = str(workdir / "serving" / model / version)
    store.put_artifacts([artifact])


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A workdir whose store holds three pushed versions and, between them, one the Pusher did not push."""
    store = new_store(tmp_path)
    for version in ("1001", "1002"):
        push(store, tmp_path, version)
    push(store, tmp_path, "unpushed", pushed=False)
    push(store, tmp_path, "1003")
    return tmp_path


def stages(workdir: Path) -> dict[str, str]:
    """Version -> stage, as the store holds them now."""
    return {v.version: v.stage for v in versions(new_store(workdir))}


def test_pushed_versions_are_numbered_in_push_order_as_candidates(workdir):
    found = versions(new_store(workdir))
    assert [(v.index, v.version, v.stage) for v in found] == [
        (1, "1001", CANDIDATE),
        (2, "1002", CANDIDATE),
        (3, "1003", CANDIDATE),
    ]
    assert found[0].destination == str(workdir / "serving" / "penguin" / "1001")


def test_a_version_is_found_by_name_or_index_and_an_unknown_one_lists_the_choices(workdir):
    store = new_store(workdir)
    assert find(store, "1002").index == 2
    assert find(store, "3").version == "1003"
    with pytest.raises(RegistryError) as caught:
        find(store, "4")
    assert str(caught.value) == (
        "model version '4' is not in the registry; expected an index or version: 1 (1001), 2 (1002), 3 (1003)"
    )


def test_an_empty_registry_says_nothing_was_pushed(tmp_path):
    with pytest.raises(RegistryError, match="none; nothing has been pushed yet"):
        find(new_store(tmp_path), "1")
    assert render_list([]) == "no pushed versions yet (a run pushes its model when it is blessed)"


def test_promoting_to_production_archives_the_previous_production_version(workdir):
    assert promote(workdir, "1").stage == PRODUCTION
    assert production_version(workdir, "penguin") == "1001"
    promote(workdir, "1003")
    assert stages(workdir) == {"1001": ARCHIVED, "1002": CANDIDATE, "1003": PRODUCTION}
    assert production_version(workdir, "penguin") == "1003"
    assert production_version(workdir, "taxi") is None  # production is per model directory


def test_promoting_the_production_version_again_keeps_one_production_version(workdir):
    promote(workdir, "1001")
    promote(workdir, "1001")
    assert stages(workdir) == {"1001": PRODUCTION, "1002": CANDIDATE, "1003": CANDIDATE}


def test_other_stages_only_move_the_named_version(workdir):
    promote(workdir, "1001")
    assert promote(workdir, "1002", to=ARCHIVED).stage == ARCHIVED
    assert stages(workdir) == {"1001": PRODUCTION, "1002": ARCHIVED, "1003": CANDIDATE}
    with pytest.raises(
        RegistryError,
        match=r"--to 'staging': unknown stage; expected one of: candidate, production, "
        r"archived",
    ):
        promote(workdir, "1003", to="staging")


def test_rollback_returns_to_the_version_promoted_before_and_never_back_to_a_rolled_back_one(workdir):
    for ref in ("1001", "1002", "1003"):
        promote(workdir, ref)
    was, now = rollback(workdir)
    assert (was.version, was.stage, now.version, now.stage) == ("1003", ARCHIVED, "1002", PRODUCTION)
    was, now = rollback(workdir)
    assert (was.version, now.version) == ("1002", "1001")
    assert stages(workdir) == {"1001": PRODUCTION, "1002": ARCHIVED, "1003": ARCHIVED}
    with pytest.raises(RegistryError, match="nothing to roll back to: version 1001 is the first one promoted"):
        rollback(workdir)


def test_a_rolled_back_version_promoted_again_can_be_rolled_back_to(workdir):
    promote(workdir, "1001")
    promote(workdir, "1002")
    rollback(workdir)  # 1002 is rolled back, 1001 in production
    promote(workdir, "1002")
    promote(workdir, "1003")
    assert rollback(workdir)[1].version == "1002"


def test_rollback_with_nothing_in_production(workdir):
    with pytest.raises(RegistryError, match=r"nothing to roll back: no version is in production"):
        rollback(workdir)


def test_no_store_means_no_production_version(tmp_path):
    assert production_version(tmp_path, "penguin") is None


def test_the_list_shows_each_version_with_its_metrics():
    rows = [
        Entry(
            index=1,
            version="1001",
            stage=PRODUCTION,
            destination="/s/1001",
            pushed_ms=0,
            model_artifact_id=7,
            metrics={"sparse_categorical_accuracy": 0.98, "example_count": 67, "loss_diff": 0.1},
        ),
        Entry(
            index=2,
            version="1002",
            stage=CANDIDATE,
            destination="/s/1002",
            pushed_ms=86_400_000,
            model_artifact_id=9,
            metrics={"sparse_categorical_accuracy": 0.5},
        ),
    ]
    header, first, second = render_list(rows).splitlines()
    assert header.split() == [
        "#",
        "version",
        "stage",
        "pushed",
        "(UTC)",
        "example_count",
        "sparse_categorical_accuracy",
    ]
    assert first.split() == ["1", "1001", "production", "1970-01-01", "00:00:00", "67", "0.9800"]
    assert second.split() == ["2", "1002", "candidate", "1970-01-02", "00:00:00", "-", "0.5000"]
    assert "lineage" not in rows[0].to_dict() and rows[0].to_dict()["metrics"]["example_count"] == 67
