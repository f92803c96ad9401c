"""The LiteRT export policy: which measured variant passes the gate, which one is picked, and the table."""

from keel.core.spec import LiteSection
from keel.export.exporter import LitePolicy
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
