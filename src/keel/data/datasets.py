"""Real data sets that ship inside installed packages, materialised as CSV (or pictures) into a workdir.

`builtin:NAME` in a spec's `data.source` names one of these. Nothing is downloaded: each reads a
file from an installed wheel, applies a documented, deterministic conversion, and writes the
result once. An unchanged file is never rewritten, so TFX's input fingerprint (which includes
the file's mtime) stays the same and ExampleGen is cached across runs.
"""

import csv
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import itertools
import json
from pathlib import Path
from typing import Callable, Iterable

from keel.core.errors import SpecError


@dataclasses.dataclass(frozen=True)
class Builtin:
    """A data set shipped in a package: where it lives and how it becomes keel's CSV."""

    name: str
    package: str
    relative_path: str
    description: str
    convert: Callable[[list[str], Iterable[list[str]]], tuple[list[str], Iterable[list[str]]]]

    def source_file(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise SpecError(
                f"data.source: builtin:{self.name} needs the package {self.package!r}, "
                "which is not installed (run `make install`)"
            )
        return Path(list(spec.submodule_search_locations)[0]) / self.relative_path

    def read_text(self) -> tuple[bytes, str]:
        """The source file's bytes (what is fingerprinted) and its text (gunzipped if `.gz`)."""
        raw = self.source_file().read_bytes()
        text = gzip.decompress(raw) if self.relative_path.endswith(".gz") else raw
        return raw, text.decode("utf-8")

    def columns(self) -> list[str]:
        header = next(csv.reader(io.StringIO(self.read_text()[1], newline="")))
        return self.convert(header, [])[0]


def _penguins(header: list[str], rows: Iterable[list[str]]):
    # palmerpenguins writes missing values as "NA"; CSV readers (and CsvExampleGen) would read
    # the whole column as text. Missing becomes an empty field, which TFX reads as absent.
    return header, ([("" if v == "NA" else v) for v in row] for row in rows)


def _taxi(header: list[str], rows: Iterable[list[str]]):
    # The label of TFX's own taxi example: the tip is more than 20% of the fare. `tips` is dropped
    # because it would leak the label.
    fare, tips = header.index("fare"), header.index("tips")
    keep = [i for i in range(len(header)) if i != tips]

    def big_tipper(row):
        try:
            return "1" if float(row[tips]) > 0.2 * float(row[fare]) else "0"
        except ValueError:  # a missing fare or tip
            return "0"

    out_header = [header[i] for i in keep] + ["big_tipper"]
    return out_header, ([row[i] for i in keep] + [big_tipper(row)] for row in rows)


def _digits(first: list[str], rows: Iterable[list[str]]):
    # scikit-learn's digits file has no header: 64 pixel intensities (0-16, row by row of an 8x8
    # image) then the digit. Pixels are written as floats so CSV inference makes them float columns
    # (float32 inputs on a phone); names are zero-padded so they sort in pixel order.
    header = [f"pixel_{i:02d}" for i in range(64)] + ["digit"]

    def convert(row):
        return [f"{float(v):.1f}" for v in row[:64]] + [str(int(float(row[64])))]

    return header, (convert(row) for row in itertools.chain([first], rows))


_BREAST_CANCER_MEASURES = [
    "radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave_points",
    "symmetry", "fractal_dimension",
]  # fmt: skip


def _breast_cancer(first: list[str], rows: Iterable[list[str]]):
    # scikit-learn's Wisconsin breast cancer file: a first line of counts and the class names
    # ("569,30,malignant,benign"), then 30 measurements and the class index per row. The names are
    # sklearn's (mean, standard error and worst of ten measures), the label the class name.
    names = first[2:]
    header = [f"{stat}_{m}" for stat in ("mean", "error", "worst") for m in _BREAST_CANCER_MEASURES]
    return header + ["diagnosis"], (row[:30] + [names[int(row[30])]] for row in rows)


BUILTINS = {
    b.name: b
    for b in [
        Builtin(
            "penguins",
            "palmerpenguins",
            "data/penguins.csv",
            "Palmer penguins (344 rows, 3 species; missing values; string categoricals)",
            _penguins,
        ),
        Builtin(
            "taxi",
            "tfx",
            "examples/chicago_taxi_pipeline/data/simple/data.csv",
            "Chicago taxi trips shipped in the tfx wheel (15,002 rows); label big_tipper",
            _taxi,
        ),
        Builtin(
            "digits",
            "sklearn",
            "datasets/data/digits.csv.gz",
            "scikit-learn's handwritten digits (1,797 8x8 images, 64 pixel columns); label digit",
            _digits,
        ),
        Builtin(
            "breast_cancer",
            "sklearn",
            "datasets/data/breast_cancer.csv",
            "scikit-learn's Wisconsin breast cancer data (569 rows, 30 measurements); label diagnosis: "
            "malignant or benign",
            _breast_cancer,
        ),
    ]
}


# Builtins written as a folder of pictures (DIR/LABEL/NNNN.png), read through keel.data.pictures.
PICTURE_BUILTINS = {
    "digits_images": Builtin(
        "digits_images",
        "sklearn",
        "datasets/data/digits.csv.gz",
        "scikit-learn's handwritten digits as 1,797 8x8 grayscale PNG files (DIGIT/NNNN.png, intensities 0-16 "
        "scaled to 0-255); label: the folder's digit",
        _digits,
    )
}
PICTURE_LABELS = {"digits_images": [str(d) for d in range(10)]}


def get_builtin(name: str) -> Builtin:
    """Returns the builtin data set `name`, or raises SpecError naming the ones that exist."""
    known = {**BUILTINS, **PICTURE_BUILTINS}
    if name not in known:
        raise SpecError(
            f"data.source: 'builtin:{name}' is not a builtin data set; "
            f"expected one of: {', '.join('builtin:' + n for n in known)}"
        )
    return known[name]


def materialise_pictures(name: str, dest_dir: Path) -> dict:
    """Writes picture builtin `name` as `dest_dir/LABEL/NNNN.png` (only files whose bytes changed).

    Returns a provenance record like `materialise`'s, with the folder and the picture count."""
    import numpy as np
    import tensorflow as tf  # heavy: only for picture builtins

    builtin = PICTURE_BUILTINS[name]
    raw, text = builtin.read_text()
    reader = csv.reader(io.StringIO(text, newline=""))
    _, rows = builtin.convert(next(reader), reader)
    count = 0
    for i, row in enumerate(rows):
        intensities = np.array([float(v) for v in row[:64]]).reshape(8, 8, 1)
        png = tf.io.encode_png(np.round(intensities * 255 / 16).astype(np.uint8)).numpy()
        target = dest_dir / row[64] / f"{i:04d}.png"
        if not target.exists() or target.read_bytes() != png:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(png)
            partial.replace(target)
        count += 1
    return {
        "builtin": name,
        "description": builtin.description,
        "source_file": str(builtin.source_file()),
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "folder": str(dest_dir),
        "pictures": count,
    }


def materialise(name: str, dest_dir: Path) -> dict:
    """Writes builtin `name` to `dest_dir/data.csv` (only if its content changed).

    Returns a provenance record: source package file and its sha256, the written file and its
    sha256, and the row count. The record is also written beside the data as SOURCE.json.
    """
    builtin = get_builtin(name)
    source = builtin.source_file()
    raw, text = builtin.read_text()
    reader = csv.reader(io.StringIO(text, newline=""))
    header, rows = builtin.convert(next(reader), reader)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    data = buffer.getvalue().encode("utf-8")

    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / "data.csv"
    if not target.exists() or target.read_bytes() != data:
        tmp = target.with_suffix(".csv.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic: ExampleGen never sees a half-written file
    record = {
        "builtin": name,
        "description": builtin.description,
        "source_file": str(source),
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "file": str(target),
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": count,
    }
    # Outside the ExampleGen input directory, so it is not read as data.
    (dest_dir.parent / f"{dest_dir.name}.SOURCE.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
