"""A folder of pictures as keel's data: `DIR/LABEL/*.png|jpg|jpeg` -> tf.Example records.

The layout is `tf.keras.utils.image_dataset_from_directory`'s: one subfolder per class, its name the
label. keel writes each picture's encoded bytes (the `features.image` column) and its label into one
GZIP TFRecord file under the workdir, which ImportExampleGen then reads like any TFRecord source;
Transform decodes, resizes and scales inside the graph. Every picture is decoded once here with
TensorFlow's own decoder, so a file that is not a picture, is truncated or has another channel count
than `features.channels` stops the run before anything else runs, naming the file. The written file
is rewritten only when a picture changed, so ExampleGen stays cached.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from keel.core.errors import SpecError

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
RECORDS_FILE = "pictures.tfrecord.gz"
SUMMARY_FILE = "pictures.json"  # beside the records' directory: the pictures' sha256 of the last write


def is_picture_folder(path: Path) -> bool:
    """True for a directory whose entries are subfolders (the classes) rather than data files."""
    if not path.is_dir():
        return False
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.is_dir() for p in entries)


def scan(folder: Path) -> list[tuple[str, Path]]:
    """(label, file) for every picture under `folder`, sorted; raises SpecError naming what is wrong."""
    pictures, others = [], []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in label_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            (pictures if path.suffix.lower() in PICTURE_SUFFIXES else others).append((label_dir.name, path))
    if others:
        label, path = others[0]
        raise SpecError(
            f"data.source: {path} is not a .png, .jpg or .jpeg file; a folder of pictures holds only "
            f"pictures, one subfolder per label ({len(others)} other file(s))"
        )
    if not pictures:
        raise SpecError(f"data.source: {folder} holds no pictures; expected {folder}/LABEL/*.png|jpg|jpeg")
    labels = {label for label, _ in pictures}
    if len(labels) < 2:
        raise SpecError(f"data.source: {folder} has one label folder ({labels.pop()}); a classifier needs two or more")
    return pictures


def decode(path: Path, content: bytes, channels: int):
    """The picture's pixels (uint8 [H, W, C]); raises SpecError naming the file when it is unusable."""
    import tensorflow as tf  # heavy: only for picture sources

    try:
        pixels = tf.io.decode_image(content, expand_animations=False).numpy()
    except tf.errors.InvalidArgumentError as e:
        reason = str(e).split("}}")[-1].split("[Op:")[0].strip()
        raise SpecError(f"data.source: {path} is not a readable picture ({reason})") from None
    if pixels.shape[-1] != channels:
        raise SpecError(f"data.source: {path} has {pixels.shape[-1]} channel(s); features.channels is {channels}")
    return pixels


def _manifest(pictures: list[tuple[str, Path]], folder: Path) -> list[dict]:
    return [
        {"path": str(path.relative_to(folder)), "label": label, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        for label, path in pictures
    ]


def write_records(
    folder: Path, dest_dir: Path, image_column: str, label_column: str, channels: int
) -> tuple[Path, list[dict]]:
    """Writes the folder's pictures as tf.Example records to `dest_dir/pictures.tfrecord.gz`.

    Returns the file and the manifest (each picture's path, label and sha256). Checks every picture
    first; writes through a temporary file, and not at all when the manifest is the last write's.
    """
    pictures = scan(folder)
    manifest = _manifest(pictures, folder)
    digest = hashlib.sha256(json.dumps([manifest, image_column, label_column, channels]).encode()).hexdigest()
    target = dest_dir / RECORDS_FILE
    summary = dest_dir.parent / f"{dest_dir.name}.{SUMMARY_FILE}"
    if target.is_file() and summary.is_file() and json.loads(summary.read_text()).get("digest") == digest:
        return target, manifest

    import tensorflow as tf

    contents = []
    for label, path in pictures:
        content = path.read_bytes()
        decode(path, content, channels)
        contents.append((label, content))
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = dest_dir.parent / f".{dest_dir.name}.{RECORDS_FILE}.partial"
    with tf.io.TFRecordWriter(str(partial), options="GZIP") as writer:
        for label, content in contents:
            example = tf.train.Example()
            example.features.feature[image_column].bytes_list.value.append(content)
            example.features.feature[label_column].bytes_list.value.append(label.encode())
            writer.write(example.SerializeToString())
    partial.replace(target)  # atomic: ExampleGen never sees a half-written file
    summary.write_text(json.dumps({"digest": digest, "folder": str(folder), "pictures": len(manifest)}) + "\n")
    return target, manifest


def pixels_of(content: bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """A picture as the mobile model takes it: uint8 [H, W, C] at `size` (resized as Transform does)."""
    import tensorflow as tf

    pixels = tf.io.decode_image(content, channels=channels, expand_animations=False)
    if tuple(pixels.shape[:2]) != tuple(size):
        pixels = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(pixels, size)), 0, 255), tf.uint8)
    return pixels.numpy()
