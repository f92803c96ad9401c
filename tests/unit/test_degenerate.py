"""DataGate's checks for data too thin to train on, on TFDV statistics protos built by hand."""

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import statistics_pb2

from keel.pipeline.components.degenerate import degenerate
from keel.pipeline.config import GateConfig


def split(text: str) -> statistics_pb2.DatasetFeatureStatistics:
    return text_format.Parse(text, statistics_pb2.DatasetFeatureStatistics())


def numeric(name: str, kind: str = "FLOAT", lo: float = 0, hi: float = 1, missing: int = 0, present: int = 10):
    return (
        f'features {{ path {{ step: "{name}" }} type: {kind} num_stats {{ min: {lo} max: {hi} '
        f"common_stats {{ num_missing: {missing} num_non_missing: {present} tot_num_values: {present} max_num_values: 1 }} }} }}"
    )


def text(name: str, unique: int, top: str = "a", empty: int = 0):
    # CsvExampleGen writes an empty text field as an empty list: present, with no value.
    return (
        f'features {{ path {{ step: "{name}" }} type: STRING string_stats {{ unique: {unique} '
        f'rank_histogram {{ buckets {{ label: "{top}" sample_count: 5 }} }} '
        f"common_stats {{ num_non_missing: 10 tot_num_values: {10 - empty} max_num_values: 1 }} }} }}"
    )


CONFIG = GateConfig("label", (), (), "classification", "warn")


def test_healthy_statistics_have_no_problem_and_no_warning():
    stats = {s: split(f"num_examples: 10 {numeric('x')} {text('label', 2)}") for s in ("train", "eval")}
    assert degenerate(stats, {}, CONFIG) == ([], [])


def test_a_type_that_differs_between_the_splits_is_named_with_both_types():
    stats = {
        "train": split(f"num_examples: 10 {numeric('x')} {text('label', 2)}"),
        "eval": split(f"num_examples: 10 {numeric('x', kind='INT')} {text('label', 2)}"),
    }
    problems, _ = degenerate(stats, {}, CONFIG)
    assert problems == [
        "column 'x' has a different type in each split (integer in split eval, float in split train): write it one way"
    ]


def test_a_regression_label_with_gaps_and_a_constant_feature_only_warn():
    stats = {
        s: split(f"num_examples: 10 {numeric('x', lo=3, hi=3)} {numeric('label', missing=2, present=8)}")
        for s in ("train", "eval")
    }
    problems, warnings = degenerate(stats, {}, GateConfig("label", (), (), "regression", "warn"))
    assert problems == []
    assert "split train: the label 'label' is missing in 2 row(s); they are left out" in warnings[1]
    assert warnings[-1] == "column 'x' holds one value ('3') in every training row; it tells the model nothing"


def test_empty_text_fields_count_as_a_missing_label():
    stats = {s: split(f"num_examples: 10 {numeric('x')} {text('label', 2, empty=3)}") for s in ("train", "eval")}
    problems, _ = degenerate(stats, {}, CONFIG)
    assert problems[1].startswith("split train: the label 'label' is missing in 3 row(s): fill those rows")


def test_an_integer_label_with_one_class_stops():
    stats = {
        s: split(f"num_examples: 10 {numeric('x')} {numeric('label', kind='INT', lo=1, hi=1)}")
        for s in ("train", "eval")
    }
    problems, _ = degenerate(stats, {}, CONFIG)
    assert problems == [
        "split train: the label 'label' has a single class ('1' in all 10 row(s)): a classifier needs at least two"
    ]
