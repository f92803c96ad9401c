"""LiteExporter: the parity-gated LiteRT export, as a TFX component after the Pusher.

It acts only on a model the Evaluator blessed and the Pusher pushed: it converts the pushed
SavedModel to every variant in `[export.lite]`, runs each with LiteRT on the eval split next to the
SavedModel, and exports the variant the policy picks to `serving/NAME/VERSION/lite/` (and to its own
artifact). When no variant passes it fails the run with the comparison table. The output artifact
records in ML Metadata whether anything was exported, the variant, its size and its figures.
"""

from pathlib import Path

from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.types import standard_artifacts

from keel.pipeline.config import LiteExportConfig, decode


class LiteModel(tfx.dsl.Artifact):
    """A LiteRT export: model.tflite, signature.json, report.md and report.json."""

    TYPE_NAME = "keel.LiteModel"


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
        max_size_bytes=settings.max_size_bytes,
        representative_rows=settings.representative_rows,
    )
    result = export_lite(destination, examples.uri, Path(lite_model.uri), policy, label=settings.label)
    served = Path(destination) / LITE_DIR
    install(result.directory, served)
    chosen = result.chosen
    lite_model.set_int_custom_property("exported", 1)
    lite_model.set_string_custom_property("variant", chosen.name)
    lite_model.set_string_custom_property("lite_destination", str(served))
    lite_model.set_int_custom_property("size_bytes", chosen.size_bytes)
    lite_model.set_float_custom_property("accuracy", chosen.accuracy)
    lite_model.set_float_custom_property("accuracy_drop", chosen.accuracy_drop)
    lite_model.set_float_custom_property("argmax_agreement", chosen.agreement)
    lite_model.set_float_custom_property("latency_median_us", chosen.latency_median_us)
    print(
        f"    LiteExporter: {chosen.name}, {chosen.size_bytes} bytes, accuracy {chosen.accuracy:.4f} "
        f"(drop {chosen.accuracy_drop * 100:.2f} pp) -> {served}",
        flush=True,
    )
