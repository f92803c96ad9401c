"""The export step: SavedModel + ExampleGen splits -> the variant the policy picks, with its reports.

Shared by the LiteExporter component and `keel export`. Output directory contents:
`model.tflite` (the chosen variant), `signature.json` (inputs, dtypes, shapes; the label vocabulary,
or for regression the label's name), `report.md` and `report.json` (every variant next to the
SavedModel). Written to a sibling temporary directory and renamed into place, so a failed export
leaves nothing half-written. The SavedModel's task decides what is measured (keel.export.measures).
"""

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from keel.core.errors import ExportError
from keel.export import examples as example_rows
from keel.export import report
from keel.export.measures import measure_of
from keel.export.mobile import inspect_saved_model, mobile_inputs, save_mobile_model
from keel.export.parity import Measurement, measure_variant, savedmodel_reference
from keel.export.variants import VARIANTS, convert

MODEL_FILE, SIGNATURE_FILE, REPORT_MD, REPORT_JSON = "model.tflite", "signature.json", "report.md", "report.json"
LITE_DIR = "lite"  # the export's directory inside a pushed version


@dataclasses.dataclass(frozen=True)
class LitePolicy:
    """Which variants to build and how one is picked (the spec's [export.lite])."""

    variants: tuple[str, ...] = VARIANTS
    choose: str = "smallest"
    max_accuracy_drop: float = 0.005  # classification's bound
    max_abs_diff: float | None = None  # regression's bound, in the label's units; None: see resolved_bound
    max_size_bytes: int | None = None
    representative_rows: int = 200
    latency_calls: int = 200

    @classmethod
    def from_dict(cls, values: dict) -> "LitePolicy":
        """A policy from the spec's [export.lite] as plain data (keys it does not know are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        picked = {k: v for k, v in values.items() if k in known}
        if "variants" in picked:
            picked["variants"] = tuple(picked["variants"])
        return cls(**picked)


@dataclasses.dataclass
class LiteExport:
    """The outcome: the chosen variant, every measurement, and where the files are."""

    directory: Path
    chosen: Measurement
    reference: Measurement
    variants: list[Measurement]
    summary: dict

    @property
    def measure(self):
        """What was measured and gated: keel.export.measures' Classification or Regression."""
        return measure_of(self.reference.task)

    def table(self) -> str:
        return report.table(self.reference, self.variants)

    def to_dict(self) -> dict:
        """What `keel export --json` prints: report.json's content and where the export is."""
        return {"directory": str(self.directory), **report.to_json(self.summary, self.reference, self.variants)}


def install(source: Path, target: Path) -> None:
    """Copies directory `source` to `target` through a sibling temporary directory, replacing `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    shutil.copytree(source, staging, dirs_exist_ok=True)
    _replace(staging, target)


def _replace(staging: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def infer_label(loaded, examples_uri: str) -> str:
    """The label of a keel SavedModel: the column transform_features encodes that serving_raw does not take."""
    record = example_rows.read_split(examples_uri, "eval", limit=1)
    columns = set(tf.train.Example.FromString(record[0]).features.feature) if record else set()
    transformed = set(loaded.signatures["transform_features"].structured_outputs)
    raw = set(loaded.signatures["serving_raw"].structured_input_signature[1])
    found = sorted((transformed & columns) - raw)
    if len(found) != 1:
        raise ExportError(
            f"cannot tell the label from the SavedModel (candidates: {', '.join(found) or 'none'}); pass --label"
        )
    return found[0]


LABEL_STD_SHARE = 0.01  # an unset max_abs_diff: 1% of the eval labels' standard deviation


def resolved_bound(max_abs_diff: float | None, labels: np.ndarray) -> float:
    """A regression's max_abs_diff: the spec's, or LABEL_STD_SHARE of the eval labels' standard deviation."""
    if max_abs_diff is not None:
        return max_abs_diff
    known = labels[np.isfinite(labels)]
    std = float(np.std(known)) if known.size else 0.0
    return LABEL_STD_SHARE * std if std > 0 else 1e-6


def _measure_all(mobile_dir, policy, rows, labels, reference_outputs, reference, representative):
    measured = []
    for name in policy.variants:
        try:
            content = convert(mobile_dir, name, representative)
            m = measure_variant(name, content, rows, labels, reference_outputs, reference, policy.latency_calls)
            measured.append((m, content))
        except ExportError as e:
            measured.append((Measurement(name, task=reference.task, error=str(e).removeprefix(f"{name}: ")), None))
    return measured


def export_lite(
    saved_model_dir: str | Path, examples_uri: str, out_dir: str | Path, policy: LitePolicy, label: str | None = None
) -> LiteExport:
    """Converts, measures and gates; writes `out_dir`. Raises ExportError with the table if no variant passes."""
    out_dir = Path(out_dir)
    loaded, signature = inspect_saved_model(saved_model_dir)
    label = label or infer_label(loaded, examples_uri)
    signature = dataclasses.replace(signature, label=label)
    measure = measure_of(signature.task)
    records = example_rows.read_split(examples_uri, "eval")
    if not records:
        raise ExportError(f"{examples_uri}: the eval split holds no examples; parity cannot be measured")
    rows = mobile_inputs(signature, records)
    labels = measure.labels(records, label, signature)
    training_records = example_rows.read_split(examples_uri, "train", limit=policy.representative_rows)
    representative = mobile_inputs(signature, training_records)
    reference, reference_outputs = savedmodel_reference(loaded, records, labels, signature, policy.latency_calls)
    if signature.task == "regression":
        policy = dataclasses.replace(
            policy, max_abs_diff=resolved_bound(policy.max_abs_diff, np.asarray(labels, float))
        )

    with tempfile.TemporaryDirectory(prefix="keel-mobile-") as scratch:
        mobile_dir = save_mobile_model(loaded, signature, Path(scratch) / "mobile")
        measured = _measure_all(mobile_dir, policy, rows, labels, reference_outputs, reference, representative)
    variants = [m for m, _ in measured]
    report.apply_policy(variants, policy.max_accuracy_drop, policy.max_size_bytes, policy.max_abs_diff)
    chosen = report.choose(variants, policy.choose)
    summary = {
        "saved_model": str(saved_model_dir),
        "label": label,
        "metric": measure.metric,
        "chosen": chosen.name if chosen else None,
        "eval_rows": len(records),
        "representative_rows": len(training_records),
        "latency_calls": policy.latency_calls,
        "policy": {
            "choose": policy.choose,
            measure.bound: getattr(policy, measure.bound),
            "max_size_bytes": policy.max_size_bytes,
            "variants": list(policy.variants),
        },
    }
    if chosen is None:
        raise ExportError(
            "no LiteRT variant meets the export policy; measured on the eval split:\n"
            + report.table(reference, variants)
        )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    content = dict((m.name, c) for m, c in measured)[chosen.name]
    (staging / MODEL_FILE).write_bytes(content)
    (staging / SIGNATURE_FILE).write_text(json.dumps({**signature.to_json(), "variant": chosen.name}, indent=2) + "\n")
    (staging / REPORT_MD).write_text(report.render_markdown(summary, reference, variants))
    (staging / REPORT_JSON).write_text(json.dumps(report.to_json(summary, reference, variants), indent=2) + "\n")
    _replace(staging, out_dir)
    return LiteExport(out_dir, chosen, reference, variants, summary)
