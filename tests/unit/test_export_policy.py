"""The LiteRT export policy: which measured variant passes the gate, which one is picked, and the table."""

from pathlib import Path

import numpy as np
import pytest

from keel.core.spec import LiteSection
from keel.export.exporter import LitePolicy, resolved_bound
from keel.export.parity import Measurement
from keel.export.report import apply_policy, choose, table
from keel.export.variants import VARIANTS


def measured() -> list[Measurement]:
    """Four variants as a parity run measures them: smaller ones lose a little accuracy."""
    return [
        Measurement("float32", 0.980, size_bytes=40_000, accuracy_drop=0.000),
        Measurement("float16", 0.980, size_bytes=21_000, accuracy_drop=0.000),
        Measurement("dynamic", 0.977, size_bytes=12_000, accuracy_drop=0.003),
        Measurement("int8", 0.960, size_bytes=11_000, accuracy_drop=0.020),
    ]


def test_the_gate_passes_variants_within_the_accuracy_drop():
    variants = measured()
    apply_policy(variants, max_accuracy_drop=0.005, max_size_bytes=None)
    assert [m.passed for m in variants] == [True, True, True, False]
    assert variants[3].reasons == ["accuracy drop 2.00 pp > max_accuracy_drop 0.50 pp"]


def test_a_drop_exactly_at_the_bar_passes():
    variants = [Measurement("dynamic", 0.975, size_bytes=1, accuracy_drop=0.005)]
    apply_policy(variants, max_accuracy_drop=0.005, max_size_bytes=None)
    assert variants[0].passed


def test_smallest_picks_the_smallest_passing_variant_and_most_accurate_the_best():
    variants = measured()
    apply_policy(variants, max_accuracy_drop=0.005, max_size_bytes=None)
    assert choose(variants, "smallest").name == "dynamic"  # int8 is smaller but fails the gate
    assert choose(variants, "most_accurate").name == "float16"  # ties on accuracy go to the smaller


def test_a_size_limit_fails_large_variants_with_the_reason():
    variants = measured()
    apply_policy(variants, max_accuracy_drop=0.05, max_size_bytes=20_000)
    assert [m.name for m in variants if m.passed] == ["dynamic", "int8"]
    assert variants[0].reasons == ["size 40000 bytes > max_size_bytes 20000"]
    assert choose(variants, "most_accurate").name == "dynamic"


def test_a_failed_conversion_fails_the_gate_with_its_error():
    variants = [*measured()[:1], Measurement("int8", 0.0, error="conversion failed: 'tf.Foo' op")]
    apply_policy(variants, max_accuracy_drop=0.005, max_size_bytes=None)
    assert variants[1].reasons == ["conversion failed: 'tf.Foo' op"] and not variants[1].passed


def test_no_passing_variant_chooses_none_and_the_table_says_why():
    variants = measured()
    apply_policy(variants, max_accuracy_drop=0.005, max_size_bytes=5_000)
    assert choose(variants, "smallest") is None
    reference = Measurement("savedmodel", 0.980, size_bytes=None)
    lines = table(reference, variants).splitlines()
    assert lines[0].startswith("| variant | size (bytes) | accuracy | drop (pp) |")
    assert lines[2].startswith("| savedmodel | - | 0.9800 | - |") and lines[2].endswith("| reference |")
    assert lines[5].startswith("| dynamic | 12000 | 0.9770 | +0.30 |")
    assert lines[5].endswith("| no: size 12000 bytes > max_size_bytes 5000 |")
    assert len(lines) == 2 + 1 + len(variants)


def test_policy_from_the_spec_section_keeps_its_settings_and_ignores_other_keys():
    section = LiteSection(variants=["int8", "float16"], choose="most_accurate", max_accuracy_drop=0.01)
    policy = LitePolicy.from_dict({**section.model_dump(), "not_a_policy_key": 1})
    assert policy == LitePolicy(
        variants=("int8", "float16"),
        choose="most_accurate",
        max_accuracy_drop=0.01,
        max_size_bytes=None,
        representative_rows=200,
    )


def test_the_default_policy_matches_the_spec_defaults():
    assert LitePolicy.from_dict(LiteSection().model_dump()) == LitePolicy()
    assert LitePolicy().variants == VARIANTS


def measured_regression() -> list[Measurement]:
    """Regression variants: each one's RMSE on the labels and its difference from the SavedModel's predictions."""

    def m(name, rmse, size, max_abs_diff):
        return Measurement(
            name,
            task="regression",
            rmse=rmse,
            size_bytes=size,
            max_abs_diff=max_abs_diff,
            mean_abs_diff=max_abs_diff / 4,
        )

    return [
        m("float32", 317.05, 11_256, 0.001),
        m("float16", 316.80, 11_264, 3.42),
        m("dynamic", 317.10, 11_000, 0.6),
        m("int8", 743.1, 9_000, 1370.0),
    ]


def test_the_regression_gate_bounds_the_largest_difference_and_ignores_accuracy():
    variants = measured_regression()
    apply_policy(variants, max_accuracy_drop=0.0, max_size_bytes=None, max_abs_diff=1.0)
    assert [m.passed for m in variants] == [True, False, True, False]
    assert variants[1].reasons == ["max abs diff 3.42 > max_abs_diff 1"]
    assert choose(variants, "smallest").name == "dynamic"
    assert choose(variants, "most_accurate").name == "float32"  # the lowest RMSE among those that pass
    apply_policy(variants, max_abs_diff=5.0)
    assert choose(variants, "most_accurate").name == "float16"


def test_a_regression_variant_with_nan_predictions_fails_the_gate():
    (variant,) = [Measurement("int8", task="regression", rmse=float("nan"), size_bytes=1, max_abs_diff=float("nan"))]
    apply_policy([variant], max_abs_diff=1e9)
    assert not variant.passed and variant.reasons == ["max abs diff nan > max_abs_diff 1e+09"]


def test_the_regression_table_and_json_show_rmse_and_differences_not_accuracy():
    from keel.export.report import measurement_json

    variants = measured_regression()
    apply_policy(variants, max_abs_diff=1e-6, max_size_bytes=10_000)
    reference = Measurement("savedmodel", task="regression", rmse=317.05, mean_abs_diff=0.0)
    lines = table(reference, variants).splitlines()
    assert lines[0] == (
        "| variant | size (bytes) | rmse | max abs diff | mean abs diff | latency median (us) | latency p99 (us) "
        "| passes |"
    )
    assert lines[2].startswith("| savedmodel | - | 317.1 | - | - |") and lines[2].endswith("| reference |")
    assert lines[6].startswith("| int8 | 9000 | 743.1 | 1.37e+03 | 342 |")
    assert lines[4].endswith("| no: max abs diff 3.42 > max_abs_diff 1e-06; size 11264 bytes > max_size_bytes 10000 |")
    assert list(measurement_json(variants[0])) == [
        "name",
        "rmse",
        "size_bytes",
        "max_abs_diff",
        "mean_abs_diff",
        "latency_median_us",
        "latency_p99_us",
        "error",
        "passed",
        "reasons",
        "ops",
    ]
    assert "rmse" not in measurement_json(measured()[0]) and "accuracy" in measurement_json(measured()[0])


def test_the_lite_model_artifact_records_the_figures_of_the_task():
    from keel.export.exporter import LiteExport
    from keel.pipeline.components.lite_exporter import LiteModel, record_export

    reference = Measurement("savedmodel", task="regression", rmse=317.05)
    chosen = measured_regression()[0]
    artifact = LiteModel()
    line = record_export(artifact, LiteExport(Path("lite"), chosen, reference, [chosen], {}), Path("/served/lite"))
    assert (
        line
        == "    LiteExporter: float32, 11256 bytes, rmse 317.1 (max abs diff 0.001, mean abs diff 0.00025) -> /served/lite"
    )
    properties = {k: artifact.get_custom_property(k) for k in artifact.mlmd_artifact.custom_properties}
    assert properties["rmse"] == 317.05 and properties["max_abs_diff"] == 0.001
    assert properties["mean_abs_diff"] == 0.00025 and "accuracy" not in properties

    classified = Measurement("int8", 0.97, size_bytes=361_096, accuracy_drop=0.01, agreement=0.99)
    artifact = LiteModel()
    export = LiteExport(Path("lite"), classified, Measurement("savedmodel", 0.98), [classified], {})
    line = record_export(artifact, export, Path("/served/lite"))
    assert line == "    LiteExporter: int8, 361096 bytes, accuracy 0.9700 (drop 1.00 pp) -> /served/lite"
    assert set(artifact.mlmd_artifact.custom_properties) == {
        "exported",
        "variant",
        "lite_destination",
        "size_bytes",
        "accuracy",
        "accuracy_drop",
        "argmax_agreement",
        "latency_median_us",
    }


def test_an_unset_max_abs_diff_is_one_percent_of_the_eval_labels_spread():
    labels = np.array([3000.0, 4000.0, 5000.0, np.nan])
    assert resolved_bound(None, labels) == pytest.approx(0.01 * np.std([3000.0, 4000.0, 5000.0]))
    assert resolved_bound(2.5, labels) == 2.5
    assert resolved_bound(None, np.array([7.0, 7.0])) == 1e-6  # constant labels: only an exact export passes
