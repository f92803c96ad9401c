"""LiteExporter: the parity-gated LiteRT export, as a TFX component after the Pusher.

It acts only on a model the Evaluator blessed and the Pusher pushed: it converts the pushed
SavedModel to every variant in `[export.lite]`, runs each with LiteRT on the eval split next to the
SavedModel, and exports the variant the policy picks to `serving/NAME/VERSION/lite/` (and to its own
artifact). When no variant passes it fails the run with the comparison table. The output artifact
records in ML Metadata whether anything was exported, the variant, its size and its figures: accuracy,
accuracy_drop and argmax_agreement for classification; rmse, max_abs_diff and mean_abs_diff (in the
label's units) for regression.
"""

from pathlib import Path

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.types import standard_artifacts

from keel.pipeline.config import LiteExportConfig, decode


class LiteModel(tfx.dsl.Artifact):
    """A LiteRT export: model.tflite, signature.json, report.md and report.json."""

    TYPE_NAME = "keel.LiteModel"


def record_export(lite_model, result, served: Path) -> str:
    """Sets the LiteModel artifact's properties from export `result`; returns the console line."""
    chosen = result.chosen
    lite_model.set_int_custom_property("exported", 1)
    lite_model.set_string_custom_property("variant", chosen.name)
    lite_model.set_string_custom_property("lite_destination", str(served))
    lite_model.set_int_custom_property("size_bytes", chosen.size_bytes)
    for name, value in result.measure.properties(chosen).items():
        lite_model.set_float_custom_property(name, value)
    lite_model.set_float_custom_property("latency_median_us", chosen.latency_median_us)
    return f"    LiteExporter: {chosen.name}, {chosen.size_bytes} bytes, {result.measure.describe(chosen)} -> {served}"


def _pushed_destination(pushed_model) -> str | None:
    if not pushed_model.get_int_custom_property("pushed"):
        return None
    return pushed_model.get_string_custom_property("pushed_destination") or None


@tfx.dsl.components.component
def LiteExporter(
    model: InputArtifact[standard_artifacts.Model],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    examples: InputArtifact[standard_artifacts.Examples],
    config: Parameter[str],
    lite_model: OutputArtifact[LiteModel],
) -> None:
    """Exports the blessed, pushed model for LiteRT; raises ExportError with the table if no variant passes.

    `model` is read from the pushed copy; it is an input so that ML Metadata links the export to it.
    """
    from keel.export.exporter import LITE_DIR, LitePolicy, export_lite, install

    settings = decode(LiteExportConfig, config)
    destination = _pushed_destination(pushed_model)
    if not model_blessing.get_int_custom_property("blessed") or destination is None:
        lite_model.set_int_custom_property("exported", 0)
        print("    LiteExporter: nothing to export (the model was not blessed and pushed)", flush=True)
        return
    policy = LitePolicy(
        variants=settings.variants,
        choose=settings.choose,
        max_accuracy_drop=settings.max_accuracy_drop,
        max_abs_diff=settings.max_abs_diff,
        max_size_bytes=settings.max_size_bytes,
        representative_rows=settings.representative_rows,
    )
    result = export_lite(destination, examples.uri, Path(lite_model.uri), policy, label=settings.label)
    served = Path(destination) / LITE_DIR
    install(result.directory, served)
    print(record_export(lite_model, result, served), flush=True)
