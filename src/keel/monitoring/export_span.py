"""`keel logs export`: logged requests back into training, as a new data span of the spec's CSV source.

The requests (every form keel serve logs: predict `instances` / `inputs`, serialized tf.Examples,
classify / regress `examples`) are decoded into tf.Example rows typed by the served version's
schema (keel.monitoring.logs), each row's label joined from `--labels` by request id (or taken from
the row itself when the client sent it), and written as one CSV file under the spec's `{SPAN}`
pattern with the header of the existing spans. Rows without a label are dropped and counted.
The span appears at once or not at all (written in a hidden directory, then renamed), and an
existing span is never overwritten. Beside it a lineage file (keel.data.sources.span_lineage_file)
names the model versions, the log files and the label file with their sha256; `keel run` records
it with the run's data (keel.data.sources.prepare_source), so `keel lineage` shows it.
"""

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from keel.core.fingerprint import file_sha256
from keel.data import sources
from keel.mlmd.training_data import training_lineage
from keel.monitoring import _read_labels, logs
from keel.monitoring.logs import LogError


@dataclasses.dataclass
class ExportedSpan:
    span: int
    file: Path
    lineage_file: Path
    rows: int
    unlabelled: int
    versions: list[str]

    def render(self) -> str:
        dropped = f"; dropped {self.unlabelled} row(s) without a label" if self.unlabelled else ""
        return (
            f"span {self.span}: {self.rows} rows from version(s) {', '.join(self.versions)} written to "
            f"{self.file}{dropped}\n  lineage: {self.lineage_file}"
        )

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "file": str(self.file), "lineage_file": str(self.lineage_file)}


def _value(feature: tf.train.Feature, kind, column: str, request_id: str) -> str:
    """One CSV field: the feature's single value, "" when missing; typed as the schema types the column."""
    which = feature.WhichOneof("kind")
    values = list(getattr(feature, which).value) if which else []
    if len(values) > 1:
        raise LogError(f"request {request_id}: feature {column!r} has {len(values)} values; a CSV field holds one")
    if not values:
        return ""
    (value,) = values
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if kind == schema_pb2.INT:
        if not float(value).is_integer():
            raise LogError(f"request {request_id}: feature {column!r} is {value!r}; the schema types it INT")
        return str(int(value))
    if kind == schema_pb2.FLOAT or isinstance(value, float):
        # float32's shortest form (39.1), with its decimal point kept (3750.0): a FLOAT column written as
        # "3750" would be read back as INT, and the model trained on FLOAT could not parse the new span.
        return str(np.float32(value)) if math.isfinite(value) else ""
    return str(value)


def csv_rows(
    rows: list[logs.LoggedRow], columns: list[str], label: str, labels: dict[str, str] | None, schema
) -> tuple[list[list[str]], int]:
    """The CSV rows (in `columns` order) of the labelled logged rows, and how many had no label."""
    types = {f.name: f.type for f in schema.feature}
    written, unlabelled = [], 0
    for row in rows:
        features = tf.train.Example.FromString(row.example).features.feature
        unknown = sorted(set(features) - set(columns))
        if unknown:
            raise LogError(f"request {row.request_id}: feature {unknown[0]!r} is not a column of data.source")
        fields = {c: _value(features[c], types.get(c), c, row.request_id) for c in columns if c in features}
        found = labels.get(row.request_id) if labels is not None else None
        fields[label] = found if found is not None else fields.get(label, "")
        if fields[label] == "":
            unlabelled += 1
            continue
        written.append([fields.get(c, "") for c in columns])
    return written, unlabelled


def _in_window(predicts, version, since, until):
    start = logs.parse_since(since)
    try:
        end = logs.parse_since(until)
    except LogError as e:
        raise LogError(str(e).replace("--since", "--until", 1)) from None
    return [
        p
        for p in predicts
        if (version is None or p.version == version)
        and (start is None or p.time >= start)
        and (end is None or p.time < end)
    ]


def export_span(
    spec,
    workdir: Path,
    log_dir: Path,
    span: int,
    labels: Path | None = None,
    version: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> ExportedSpan:
    """Writes the logged requests of `log_dir` (of `version`, from `since` until before `until`) as span
    `span` of the spec's `{SPAN}` CSV source, with its lineage file beside it."""
    source = sources.resolve_source(spec)
    if not source.has_span:
        raise LogError(f"data.source: {spec.data.source!r} has no {sources.SPAN}; a new span needs a {{SPAN}} pattern")
    if source.kind != "csv":
        raise LogError(f"data.source: {spec.data.source!r} is TFRecord; keel logs export writes CSV spans")
    target = sources.span_file(source, span)
    top = Path(source.input_base) / target.relative_to(source.input_base).parts[0]
    taken = sources.span_files(source, span) or ([top] if top.exists() else [])
    if taken:
        raise LogError(f"--span {span}: {taken[0]} exists; keel never overwrites a span")
    predicts, _ = logs.read_predict_logs(log_dir)
    chosen = _in_window(predicts, version, since, until)
    if not chosen:
        held = ", ".join(sorted({p.version for p in predicts}, key=int))
        raise LogError(f"--logs: no logged requests in {log_dir} for the version and window asked (versions: {held})")
    label_name = spec.data.label
    label_map = _read_labels(labels) if labels is not None else None
    rows, unlabelled = [], 0
    versions = sorted({p.version for p in chosen}, key=int)
    for served in versions:
        schema = tfdv.load_schema_text(str(training_lineage(workdir, served).schema_file))
        found = [r for p in chosen if p.version == served for r in logs.to_rows(p, schema)]
        written, dropped = csv_rows(found, source.columns, label_name, label_map, schema)
        rows += written
        unlabelled += dropped
    if not rows:
        hint = "" if labels is not None else f"; give --labels CSV of request_id,label for {label_name!r}"
        raise LogError(f"--labels: none of the {unlabelled} logged rows has a label{hint}")
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([source.columns, *rows])
    data = text.getvalue().encode("utf-8")
    lineage_file = sources.span_lineage_file(source, span)
    record = {
        "exported_from": "request_logs",
        "span": span,
        "file": str(target),
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "model": sorted({p.model for p in chosen}),
        "versions": versions,
        "logs": [{"path": str(p), "sha256": file_sha256(p)} for p in _log_files(log_dir)],
        "labels": {"path": str(labels), "sha256": file_sha256(labels)} if labels is not None else None,
        "window": {"since": since, "until": until},
        "rows": len(rows),
        "unlabelled_dropped": unlabelled,
    }
    # The lineage first: a span never exists without it.
    _write_atomically(lineage_file, json.dumps(record, indent=2, sort_keys=True) + "\n")
    _write_span(Path(source.input_base), target, data)
    return ExportedSpan(span, target, lineage_file, len(rows), unlabelled, versions)


def _log_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in Path(log_dir).iterdir() if p.is_file() and not p.name.startswith("."))


def _write_span(base: Path, target: Path, data: bytes) -> None:
    """Writes `data` in a hidden directory under `base`, then renames its top-level entry into place."""
    relative = target.relative_to(base)
    staging = Path(tempfile.mkdtemp(prefix=".keel-export-", dir=base))
    try:
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes(data)
        os.rename(staging / relative.parts[0], base / relative.parts[0])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
