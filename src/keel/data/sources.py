"""Where a spec's data lives: builtin data sets, CSV files, TFRecord files of tf.Example, folders of pictures."""

import codecs
import csv
import dataclasses
import fnmatch
import glob
import hashlib
import json
import re
from pathlib import Path

from keel.core.errors import SpecError
from keel.data import datasets, pictures

CSV_SUFFIXES = (".csv",)
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")
SPAN = "{SPAN}"


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A resolved `data.source`: its format, the ExampleGen input base and pattern, its columns."""

    kind: str  # "csv", "tfrecord", or "images" (a folder of pictures, written as TFRecord by prepare_source)
    input_base: Path | str | None  # None for a builtin until materialised; a gs:// URI for cloud targets
    pattern: str
    columns: list[str]
    builtin: str | None = None
    span: int | None = None  # the data version ExampleGen reads, when the pattern has {SPAN}

    @property
    def has_span(self) -> bool:
        return SPAN in self.pattern


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
            rows = csv.reader(f)
            header = next(rows, None)
            first_row = next(rows, None)
    except UnicodeDecodeError:
        raise SpecError(f"data.source: {path} is not UTF-8 text") from None
    if not header:
        raise SpecError(f"data.source: {path} is empty; expected a header row and data rows")
    if first_row is None:
        raise SpecError(f"data.source: {path} has a header but no data rows")
    columns = [c.strip() for c in header]
    # A tf.Example holds one feature per name: two same-named columns cannot both reach the model.
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        where = "; ".join(
            f"{c!r} is columns {', '.join(str(i + 1) for i, n in enumerate(columns) if n == c)}" for c in repeated
        )
        raise SpecError(f"data.source: {path} has duplicate column names in its header: {where}; rename them")
    return columns


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
        if builtin.name in datasets.PICTURE_BUILTINS:
            return DataSource("images", None, "*", _picture_columns(spec), builtin=builtin.name)
        return DataSource("csv", None, "*", builtin.columns(), builtin=builtin.name)
    path = spec.resolve(source)
    if SPAN not in source and pictures.is_picture_folder(path):
        return DataSource("images", path, "*", _picture_columns(spec))
    if SPAN in source:
        base, pattern = _span_base(source, path)
        files = sorted(Path(p) for p in glob.glob(str(base / pattern.replace(SPAN, "*"))) if Path(p).is_file())
    elif path.is_dir():
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
    if kind == "csv" and SPAN not in source:  # spans may differ: select_span checks the one that runs
        _same_header(files, columns, base)
    return DataSource(kind, base, pattern, columns)


def _picture_columns(spec) -> list[str]:
    if spec.features.image is None:
        raise SpecError(
            f"data.source: {spec.data.source!r} is a folder of pictures; set features.image (the name of "
            "the picture column) and features.image_size ([height, width])"
        )
    return sorted([spec.features.image, spec.data.label])


def _same_header(files: list[Path], columns: list[str], base: Path) -> None:
    """Raises SpecError unless every CSV file in `files` has the header `columns` (that of files[0])."""
    for other in files[1:]:
        if _csv_header(other) != columns:
            raise SpecError(
                f"data.source: {other.relative_to(base)} has a different header than {files[0].relative_to(base)}; "
                "the files ExampleGen reads together must have the same columns"
            )


def _span_base(source: str, path: Path) -> tuple[Path, str]:
    """Splits a `{SPAN}` source into the directory above the first templated part and the pattern below it."""
    parts = path.parts
    first = next(i for i, part in enumerate(parts) if SPAN in part or any(ch in part for ch in "*?["))
    if any(ch in part for part in parts[:first] for ch in "*?["):
        raise SpecError(f"data.source: {source!r}: wildcards are allowed only below the {SPAN} directory")
    if sum(part.count(SPAN) for part in parts) != 1:
        raise SpecError(f"data.source: {source!r}: {SPAN} must appear exactly once")
    return Path(*parts[:first]), "/".join(parts[first:])


def select_span(source: DataSource, span: int | None) -> tuple[DataSource, list[Path]]:
    """The span ExampleGen will read (`span`, or the latest when None) and its files, as TFX selects them."""
    from tfx.components.example_gen import utils
    from tfx.proto import example_gen_pb2, range_config_pb2

    split = example_gen_pb2.Input.Split(name="all", pattern=source.pattern)
    config = None
    if span is not None:
        config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        )
    try:
        # TFX's own selection; it rewrites split.pattern to the chosen span's files.
        _, chosen, _ = utils.calculate_splits_fingerprint_span_and_version(str(source.input_base), [split], config)
    except ValueError as e:
        wanted = f"span {span}" if span is not None else "any span"
        raise SpecError(
            f"data.source: no files for {wanted} under {source.input_base} matching {source.pattern!r} ({e})"
        ) from None
    files = sorted(Path(p) for p in glob.glob(str(source.input_base / split.pattern)) if Path(p).is_file())
    columns = source.columns
    if source.kind == "csv" and files:  # a later span may have other columns than the first
        columns = _csv_header(files[0])
        _same_header(files, columns, Path(source.input_base))
    return dataclasses.replace(source, span=chosen, columns=columns), files


def prepare_source(spec, workdir: Path, span: int | None = None) -> tuple[DataSource, dict]:
    """Resolves the data source and materialises builtins under `workdir/data/`.

    `span` selects a data version of a `{SPAN}` source (default: the latest).
    Returns the source and a provenance record (files, sha256 fingerprints, span, builtin origin).
    """
    source = resolve_source(spec)
    if span is not None and not source.has_span:
        raise SpecError(f"--span {span}: data.source {spec.data.source!r} has no {SPAN} in it")
    if source.has_span:
        source, files = select_span(source, span)
        record = {
            "source": spec.data.source,
            "span": source.span,
            "files": [{"path": str(f), "sha256": _sha256(f, utf8=source.kind == "csv")} for f in files],
        }
        origin = span_origin(source, source.span)
        return source, {**record, "origin": origin} if origin else record
    if source.kind == "images":
        return _prepare_pictures(spec, source, workdir)
    if source.builtin:
        record = datasets.materialise(source.builtin, workdir / "data" / source.builtin)
        source = dataclasses.replace(source, input_base=Path(record["file"]).parent)
        return source, {
            "source": spec.data.source,
            "files": [{"path": record["file"], "sha256": record["sha256"]}],
            "origin": record,
        }
    files = sorted(Path(p) for p in glob.glob(str(source.input_base / source.pattern)) if Path(p).is_file())
    return source, {
        "source": spec.data.source,
        "files": [{"path": str(f), "sha256": _sha256(f, utf8=source.kind == "csv")} for f in files],
    }


def _prepare_pictures(spec, source: DataSource, workdir: Path) -> tuple[DataSource, dict]:
    """Writes a folder of pictures (a builtin's, materialised first) as TFRecord; the source ImportExampleGen reads."""
    record = {"source": spec.data.source}
    folder = source.input_base
    if source.builtin:
        origin = datasets.materialise_pictures(source.builtin, workdir / "data" / source.builtin)
        folder, record["origin"] = Path(origin["folder"]), origin
    records, manifest = pictures.write_records(
        Path(folder), workdir / "data" / "pictures", spec.features.image, spec.data.label, spec.features.channels
    )
    record["files"] = [{"path": str(Path(folder) / m["path"]), "sha256": m["sha256"]} for m in manifest]
    record["records"] = {"path": str(records), "sha256": _sha256(records)}
    return DataSource("tfrecord", records.parent, "*", source.columns), record


def _sha256(path: Path, utf8: bool = False) -> str:
    """The file's sha256; with `utf8`, also checks in the same pass that all of it is UTF-8 text.

    ExampleGen would fail deep inside Beam on a stray byte; this names the file, line and byte instead.
    """
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as e:
                    at = offset + e.start
                    line += chunk[: e.start].count(b"\n")
                    raise SpecError(
                        f"data.source: {path} is not UTF-8 text: byte {e.object[e.start]:#04x} at "
                        f"offset {at} (line {line}); re-encode the file as UTF-8"
                    ) from None
                offset += len(chunk)
                line += chunk.count(b"\n")
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise SpecError(f"data.source: {path} is not UTF-8 text: it ends inside a multi-byte character") from None
    return h.hexdigest()


# Spans written by `keel logs export`


def _span_regex(pattern: str) -> re.Pattern:
    """Matches a path relative to the base under `pattern` (`*` and `?` within one name); group 1 is the span."""
    wild = {"*": "[^/]*", "?": "[^/]"}
    parts = [
        r"(\d+)" if part == SPAN else "".join(wild.get(c, re.escape(c)) for c in part)
        for part in re.split(r"(\{SPAN\})", pattern)
    ]
    return re.compile("".join(parts) + r"\Z")


def span_files(source: DataSource, span: int) -> list[Path]:
    """The files of span `span` of a `{SPAN}` source (span 2 is span-2 and span-02 alike)."""
    regex = _span_regex(source.pattern)
    found = []
    for name in glob.glob(str(Path(source.input_base) / source.pattern.replace(SPAN, "*"))):
        matched = regex.match(Path(name).relative_to(source.input_base).as_posix())
        if matched and int(matched.group(1)) == span:
            found.append(Path(name))
    return sorted(found)


def span_file(source: DataSource, span: int) -> Path:
    """The one file a new span `span` is written to: the pattern with the span number, `*` as `logged`."""
    relative = source.pattern.replace(SPAN, str(span))
    if any(ch in relative for ch in "?["):
        raise SpecError(f"data.source: {source.pattern!r}: a new span is written only where the pattern has no ? or [")
    return Path(source.input_base) / relative.replace("*", "logged")


def span_lineage_file(source: DataSource, span: int) -> Path:
    """Where the lineage of span `span` is kept: beside the span's top-level entry, outside the pattern."""
    top = Path(span_file(source, span).relative_to(source.input_base).parts[0])
    path = Path(source.input_base) / f"{top}.lineage.json"
    if fnmatch.fnmatch(path.relative_to(source.input_base).as_posix(), source.pattern.replace(SPAN, "*")):
        raise SpecError(f"data.source: {source.pattern!r} would also match the span's lineage file {path.name}")
    return path


def span_origin(source: DataSource, span: int | None) -> dict | None:
    """What `keel logs export` recorded about span `span` (model versions, log and label files), or None.

    `matches` says whether the span's file is still the one exported (its sha256 is unchanged).
    """
    if span is None:
        return None
    try:
        path = span_lineage_file(source, span)
    except SpecError:
        return None
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    exported = Path(record.get("file", ""))
    matches = exported.is_file() and _sha256(exported) == record.get("file_sha256")
    return {**record, "lineage_file": str(path), "matches": matches}
