"""Bad pictures in a folder-of-pictures source: one line naming the file, before anything runs."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from checks import one_line_error
from helpers import REPO, keel, write_spec


def picture_folder(root: Path, bad: str | None = None) -> Path:
    """Two labels of real 8x8 PNGs; `bad` adds one unusable file to label b."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            pixels = np.full((8, 8, 1), 40 * i + (100 if label == "b" else 0), np.uint8)
            (root / label / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    good = (root / "a" / "0.png").read_bytes()
    if bad == "not_a_picture":
        (root / "b" / "bad.png").write_text("species,island\nAdelie,Biscoe\n")
    elif bad == "truncated":
        (root / "b" / "bad.png").write_bytes(good[: len(good) // 2])
    elif bad == "rgb":
        (root / "b" / "bad.png").write_bytes(tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy())
    return root


BAD_PICTURES = {
    "not_a_picture": "bad.png is not a readable picture (Unknown image file format",
    "truncated": "bad.png is not a readable picture (Invalid PNG",
    "rgb": "bad.png has 3 channel(s); features.channels is 1",
}


@pytest.mark.parametrize("case", sorted(BAD_PICTURES))
def test_a_bad_picture_stops_the_run_naming_the_file(tmp_path, case):
    folder = picture_folder(tmp_path / "pictures", bad=case)
    spec = write_spec(
        tmp_path / "mine.toml",
        REPO / "pipelines" / "digits_images.toml",
        {"pipeline.name": "mine", "data.source": str(folder), "data.label": "kind"},
    )
    result = keel("run", spec, "--workdir", tmp_path / "work")
    one_line_error(result, str(folder / "b" / "bad.png"), BAD_PICTURES[case])
    assert not (tmp_path / "work" / "pipeline").exists(), "nothing may run after a bad picture"
