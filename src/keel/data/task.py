"""The task a spec trains for: `[data] task`, or with "auto" what the label's values say.

auto: a text label is classification, a numeric one regression (as CsvExampleGen types the column:
every value an integer or a float). The label's distinct values are counted on a sample of the data,
so a binary metric on a label with three classes is a spec error before anything runs.
"""

import csv
import dataclasses
import glob
import io
from pathlib import Path

from keel.core.tasks import Task
from keel.data import datasets
from keel.data.sources import SPAN, DataSource

SAMPLE_ROWS = 20_000
MAX_DISTINCT = 1_000  # counting stops here: enough to tell two classes from many


@dataclasses.dataclass(frozen=True)
class ResolvedTask:
    """The task, why it was chosen, and what the sample showed of the label."""

    task: Task
    reason: str
    label_kind: str | None  # "string", "int" or "float"; None when the sample had no label values
    distinct: int  # distinct label values in the sample (at most MAX_DISTINCT)


def _kind(values: set[str]) -> str | None:
    if not values:
        return None
    for kind, parse in (("int", int), ("float", float)):
        try:
            for v in values:
                parse(v)
            return kind
        except ValueError:
            continue
    return "string"


def _csv_label_values(rows, header: list[str], label: str, values: set[str], budget: int) -> int:
    column = [c.strip() for c in header].index(label)
    for row in rows:
        if budget <= 0 or len(values) >= MAX_DISTINCT:
            break
        budget -= 1
        if column < len(row) and row[column].strip():
            values.add(row[column].strip())
    return budget


def _tfrecord_label_values(files: list[Path], label: str, values: set[str]) -> str | None:
    import tensorflow as tf  # heavy: only for TFRecord sources

    kind, budget = None, SAMPLE_ROWS
    for path in files:
        compression = "GZIP" if path.name.endswith(".gz") else ""
        for record in tf.data.TFRecordDataset(str(path), compression_type=compression).take(budget):
            budget -= 1
            feature = tf.train.Example.FromString(record.numpy()).features.feature.get(label)
            which = feature.WhichOneof("kind") if feature is not None else None
            if which is None:
                continue
            found = list(getattr(feature, which).value)
            if found:
                kind = {"bytes_list": "string", "int64_list": "int", "float_list": "float"}[which]
                values.update(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in found)
        if budget <= 0 or len(values) >= MAX_DISTINCT:
            break
    return kind


def label_sample(source: DataSource, label: str) -> tuple[str | None, set[str]]:
    """The label's kind and its distinct values in the first SAMPLE_ROWS rows of the source."""
    values: set[str] = set()
    if source.kind == "images":  # the label is the pictures' folder name: a class, whatever it spells
        folder = source.input_base
        if folder is None:
            return "string", set(datasets.PICTURE_LABELS[source.builtin])
        return "string", {p.name for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")}
    if source.builtin:
        builtin = datasets.get_builtin(source.builtin)
        reader = csv.reader(io.StringIO(builtin.read_text()[1], newline=""))
        header, rows = builtin.convert(next(reader), reader)
        _csv_label_values(rows, header, label, values, SAMPLE_ROWS)
        return _kind(values), values
    files = sorted(
        Path(p)
        for p in glob.glob(str(Path(source.input_base) / source.pattern.replace(SPAN, "*")))
        if Path(p).is_file()
    )
    if source.kind == "tfrecord":
        return _tfrecord_label_values(files, label, values), values
    budget = SAMPLE_ROWS
    for path in files:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            rows = csv.reader(f)
            budget = _csv_label_values(rows, next(rows, []), label, values, budget)
        if budget <= 0 or len(values) >= MAX_DISTINCT:
            break
    return _kind(values), values


def resolve_task(declared: str, source: DataSource, label: str) -> ResolvedTask:
    """The task for `[data] task = declared` on `source`, with the reason in words."""
    kind, values = label_sample(source, label)
    if declared != "auto":
        return ResolvedTask(declared, "declared in [data] task", kind, len(values))
    if kind in ("int", "float"):
        reason = (
            f"inferred: the label {label!r} is numeric ({kind}); "
            'set [data] task = "classification" if its values are classes'
        )
        return ResolvedTask("regression", reason, kind, len(values))
    return ResolvedTask("classification", f"inferred: the label {label!r} is text", kind, len(values))
