"""A folder of pictures as a source: layout checks, picture checks, the spec's image settings."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keel.core.errors import SpecError
from keel.core.spec import load_spec
from keel.data import pictures

from helpers import REPO, write_spec


def png(value: int, channels: int = 1) -> bytes:
    return tf.io.encode_png(np.full((4, 4, channels), value, np.uint8)).numpy()


def folder(root: Path, labels=("cat", "dog"), per_label: int = 2) -> Path:
    for label in labels:
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            (root / label / f"{i}.png").write_bytes(png(10 * i))
    return root


def test_a_folder_of_label_folders_is_a_picture_folder(tmp_path):
    assert pictures.is_picture_folder(folder(tmp_path / "p"))
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "a.csv").write_text("x\n1\n")
    assert not pictures.is_picture_folder(tmp_path / "csvs")
    assert [(label, p.name) for label, p in pictures.scan(tmp_path / "p")] == [
        ("cat", "0.png"),
        ("cat", "1.png"),
        ("dog", "0.png"),
        ("dog", "1.png"),
    ]


def test_a_file_that_is_not_a_picture_is_named(tmp_path):
    root = folder(tmp_path / "p")
    (root / "dog" / "notes.txt").write_text("good dogs")
    with pytest.raises(SpecError, match=r"notes.txt is not a .png, .jpg or .jpeg file"):
        pictures.scan(root)


def test_one_label_is_not_enough_for_a_classifier(tmp_path):
    with pytest.raises(SpecError, match=r"has one label folder \(cat\)"):
        pictures.scan(folder(tmp_path / "p", labels=("cat",)))


def test_records_are_written_once_and_hold_bytes_and_label(tmp_path):
    root = folder(tmp_path / "p")
    target, manifest = pictures.write_records(root, tmp_path / "out" / "pictures", "image", "kind", 1)
    assert [m["label"] for m in manifest] == ["cat", "cat", "dog", "dog"]
    records = list(tf.data.TFRecordDataset(str(target), compression_type="GZIP"))
    first = tf.train.Example.FromString(records[0].numpy())
    assert first.features.feature["image"].bytes_list.value[0] == (root / "cat" / "0.png").read_bytes()
    assert first.features.feature["kind"].bytes_list.value[0] == b"cat"
    written = target.stat().st_mtime_ns
    pictures.write_records(root, tmp_path / "out" / "pictures", "image", "kind", 1)
    assert target.stat().st_mtime_ns == written, "unchanged pictures must not be rewritten (ExampleGen's cache)"


def test_a_picture_with_other_channels_is_named(tmp_path):
    root = folder(tmp_path / "p")
    (root / "dog" / "rgb.png").write_bytes(png(3, channels=3))
    with pytest.raises(SpecError, match=r"rgb.png has 3 channel\(s\); features.channels is 1"):
        pictures.write_records(root, tmp_path / "out" / "pictures", "image", "kind", 1)
    assert not (tmp_path / "out" / "pictures" / pictures.RECORDS_FILE).exists()


def test_pixels_are_resized_as_the_transform_does(tmp_path):
    pixels = pictures.pixels_of(png(200), (8, 8), 1)
    assert pixels.shape == (8, 8, 1) and pixels.dtype == np.uint8 and int(pixels[0, 0, 0]) == 200


def test_a_picture_folder_needs_features_image(tmp_path):
    root = folder(tmp_path / "p")
    spec = write_spec(tmp_path / "bad.toml", REPO / "pipelines" / "digits_images.toml", {"data.source": str(root)})
    text = spec.read_text().replace('image = "image"\n', "").replace("image_size = [8, 8]\n", "")
    spec.write_text(text)
    with pytest.raises(SpecError, match=r"is a folder of pictures; set features.image"):
        load_spec(spec)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"features.image_size": [8]}, "features.image_size"),
        ({"features.channels": 2}, "features.channels"),
        ({"features.image": "digit"}, "features.image: 'digit' is the label or another feature"),
    ],
)
def test_image_settings_are_checked(tmp_path, overrides, message):
    spec = write_spec(tmp_path / "bad.toml", REPO / "pipelines" / "digits_images.toml", overrides)
    with pytest.raises(SpecError, match=message):
        load_spec(spec)
