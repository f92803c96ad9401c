"""Where a spec's data lives: builtin data sets, CSV files and TFRecord files of tf.Example."""

import csv
import dataclasses
import glob
import hashlib
from pathlib import Path

from keel import datasets
from keel.errors import SpecError

CSV_SUFFIXES = (".csv",)
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A resolved `data.source`: its format, the ExampleGen input base and pattern, its columns."""

    kind: str  # "csv" or "tfrecord"
    input_base: Path | None  # None for a builtin until it is materialised
    pattern: str
    columns: list[str]
    builtin: str | None = None


def _kind_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(TFRECORD_SUFFIXES):
        return "tfrecord"
    raise SpecError(f"data.source: {path!r} is neither .csv nor .tfrecord[.gz]")


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise SpecError(f"data.source: {path} is not UTF-8 text") from None
    if not header:
        raise SpecError(f"data.source: {path} is empty; expected a header row and data rows")
    return [c.strip() for c in header]


def _tfrecord_columns(path: Path) -> list[str]:
    import tensorflow as tf  # heavy: only when a TFRecord source is used

    compression = "GZIP" if path.name.endswith(".gz") else ""
    for record in tf.data.TFRecordDataset(str(path), compression_type=compression).take(1):
        example = tf.train.Example.FromString(record.numpy())
        return sorted(example.features.feature.keys())
    raise SpecError(f"data.source: {path} holds no records")


def resolve_source(spec) -> DataSource:
    """Resolves `spec.data.source` without writing anything. Raises SpecError if it is unusable."""
    source = spec.data.source
    if source.startswith("builtin:"):
        builtin = datasets.get_builtin(source.removeprefix("builtin:"))
        return DataSource("csv", None, "*", builtin.columns(), builtin=builtin.name)
    path = spec.resolve(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        base, pattern = path, "*"
    else:
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
        base, pattern = path.parent, path.name
        if any(ch in str(path.parent) for ch in "*?["):
            raise SpecError(f"data.source: {source!r}: wildcards are allowed only in the file name")
    if not files:
        raise SpecError(f"data.source: {source!r} matches no files (looked in {base})")
    kinds = {_kind_of(str(f)) for f in files}
    if len(kinds) > 1:
        raise SpecError(f"data.source: {source!r} mixes CSV and TFRecord files; use one format")
    kind = kinds.pop()
    columns = _csv_header(files[0]) if kind == "csv" else _tfrecord_columns(files[0])
    if kind == "csv":
        for other in files[1:]:
            if _csv_header(other) != columns:
                raise SpecError(f"data.source: {other.name} has a different header than {files[0].name}")
    return DataSource(kind, base, pattern, columns)


def prepare_source(spec, workdir: Path) -> tuple[DataSource, dict]:
    """Resolves the data source and materialises builtins under `workdir/data/`.

    Returns the source and a provenance record (files, sha256 fingerprints, builtin origin).
    """
    source = resolve_source(spec)
    if source.builtin:
        record = datasets.materialise(source.builtin, workdir / "data" / source.builtin)
        source = dataclasses.replace(source, input_base=Path(record["file"]).parent)
        return source, {"source": spec.data.source, "files": [{"path": record["file"], "sha256": record["sha256"]}],
                        "origin": record}
    files = sorted(Path(p) for p in glob.glob(str(source.input_base / source.pattern)) if Path(p).is_file())
    return source, {"source": spec.data.source,
                    "files": [{"path": str(f), "sha256": _sha256(f)} for f in files]}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
