"""`keel export`: the export step outside a pipeline run, on a workdir's pushed model or any SavedModel.

For a spec, the model is the latest one the workdir's Pusher pushed and the data is the ExampleGen
output its Evaluator read, both found through ML Metadata; the policy is the spec's [export.lite]
(defaults if absent). For a SavedModel directory, `--examples` names an ExampleGen output.
"""

import dataclasses
from pathlib import Path

from keel.core.errors import ExportError
from keel.export.exporter import LITE_DIR, LiteExport, LitePolicy, export_lite
from keel.mlmd import evaluation, lineage
from keel.mlmd import store as metadata


def latest_pushed(workdir: Path) -> tuple[str, str]:
    """(pushed SavedModel directory, examples uri the Evaluator scored it on) of the newest push."""
    store = metadata.open_store(workdir)
    pushed = lineage.pushed_models(store)
    if not pushed:
        raise ExportError(
            f"{workdir}: no pushed model yet (a model is pushed once it is blessed); run `keel run SPEC` first"
        )
    newest = pushed[-1]
    model = lineage.trained_model_of(store, newest)
    evaluator = evaluation.evaluator_of(store, model)
    examples = metadata.input_artifact(store, evaluator.id, "examples") if evaluator else None
    if examples is None:
        raise ExportError(f"{workdir}: ML Metadata has no Evaluator run for the pushed model {model.uri}")
    return metadata.custom(newest, "pushed_destination"), examples.uri


def export_spec(
    spec, workdir: Path | None = None, variants: list[str] | None = None, out: Path | None = None
) -> LiteExport:
    """Exports the latest pushed model of `spec`'s workdir under the spec's [export.lite] policy."""
    workdir = Path(workdir or spec.default_workdir()).resolve()
    saved_model, examples = latest_pushed(workdir)
    lite = spec.export.lite
    policy = LitePolicy.from_dict(lite.model_dump() if lite else {})
    if variants:
        policy = dataclasses.replace(policy, variants=tuple(variants))
    return export_lite(saved_model, examples, out or Path(saved_model) / LITE_DIR, policy, label=spec.data.label)


def export_saved_model(
    saved_model: Path,
    examples: str | None,
    variants: list[str] | None = None,
    out: Path | None = None,
    label: str | None = None,
) -> LiteExport:
    """Exports any keel SavedModel directory with the default policy, measured on `examples`."""
    if not examples:
        raise ExportError(
            f"{saved_model}: exporting a SavedModel directory needs --examples, an ExampleGen "
            "output directory with Split-train and Split-eval"
        )
    policy = LitePolicy(variants=tuple(variants)) if variants else LitePolicy()
    return export_lite(saved_model, examples, out or Path(saved_model) / LITE_DIR, policy, label=label)
