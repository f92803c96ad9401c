"""Data too thin to train on, read from StatisticsGen's output (TFDV statistics per split).

`degenerate(stats, types, config)` returns (problems, warnings), one plain-words line each.
Problems stop the run at DataGate, before Transform:
- a split with no rows: Transform's analysers and the Evaluator have nothing to work on;
- a classification label with a single class in training: there is nothing to tell apart;
- a classification label with missing values: the missing value would become a class of its own;
- a feature with no values at all: its mean or vocabulary is undefined (and it would not be in the
  schema, so the Transform could not find it);
- a column whose type differs between the splits: the model is trained on one and fed the other.
Warnings let the run go on:
- a constant feature: it carries no information, but training on it is harmless (z-scored to 0, or a
  vocabulary of one), and a span in which a flag never changes is common;
- a regression label with missing values: those rows get weight 0 (keel's transform), so they count
  in neither the loss nor the metrics.
"""

from tensorflow_metadata.proto.v0 import statistics_pb2

from keel.pipeline.config import GateConfig

Stats = dict[str, statistics_pb2.DatasetFeatureStatistics]
TYPE_NAMES = {
    statistics_pb2.FeatureNameStatistics.INT: "integer",
    statistics_pb2.FeatureNameStatistics.FLOAT: "float",
    statistics_pb2.FeatureNameStatistics.STRING: "text",
    statistics_pb2.FeatureNameStatistics.BYTES: "bytes",
    statistics_pb2.FeatureNameStatistics.STRUCT: "struct",
}


def _feature(split_stats, name: str):
    return next((f for f in split_stats.features if list(f.path.step) == [name] or f.name == name), None)


def _common(feature) -> statistics_pb2.CommonStatistics:
    kind = feature.WhichOneof("stats")
    return getattr(feature, kind).common_stats if kind in ("num_stats", "string_stats") else None


def _without_values(common: statistics_pb2.CommonStatistics) -> int:
    """Rows in which a feature has no value: absent, or (as CsvExampleGen writes an empty field) an empty list."""
    if common.max_num_values <= 1:
        return int(common.num_missing + max(0, common.num_non_missing - common.tot_num_values))
    return int(common.num_missing)


def _distinct(feature) -> list[str] | None:
    """The values a feature takes when it takes at most one (its single value), else None."""
    if feature.HasField("string_stats"):
        strings = feature.string_stats
        if strings.unique == 1:
            return [b.label for b in strings.rank_histogram.buckets[:1]] or ["(one value)"]
    elif feature.HasField("num_stats"):
        numbers = feature.num_stats
        if numbers.common_stats.tot_num_values and numbers.min == numbers.max:
            return [f"{numbers.min:g}"]
    return None


def _features(config: GateConfig, types: dict[str, int], stats: Stats) -> list[str]:
    """The feature columns the Transform will use: the declared ones, or every column but the label."""
    if config.numeric or config.categorical:
        return [*config.numeric, *config.categorical]
    seen = {f.path.step[0] for s in stats.values() for f in s.features if f.path.step} | set(types)
    return sorted(seen - {config.label})


def _empty_splits(stats: Stats) -> list[str]:
    total = sum(s.num_examples for s in stats.values())
    return [
        f"split {split} has no rows (the hash split of {total} row(s) sent none to it): add rows, "
        "or change data.eval_percent"
        for split, s in sorted(stats.items())
        if s.num_examples == 0
    ]


def _label(stats: Stats, label: str, task: str) -> tuple[list[str], list[str]]:
    problems, warnings = [], []
    for split, split_stats in sorted(stats.items()):
        feature = _feature(split_stats, label)
        if feature is None or not split_stats.num_examples:
            continue
        common = _common(feature)
        missing = _without_values(common) if common else 0
        if missing and task == "classification":
            problems.append(
                f"split {split}: the label {label!r} is missing in {missing} row(s): fill those rows or drop them "
                "(a missing label would be a class of its own)"
            )
        elif missing:
            warnings.append(
                f"split {split}: the label {label!r} is missing in {missing} row(s); they are left out of "
                "training and evaluation"
            )
        if split == "train" and task == "classification":
            single = _distinct(feature)
            if single is not None:
                problems.append(
                    f"split train: the label {label!r} has a single class ({single[0]!r} in all "
                    f"{split_stats.num_examples} row(s)): a classifier needs at least two"
                )
    return problems, warnings


def _empty_and_constant(stats: Stats, names: list[str]) -> tuple[list[str], list[str]]:
    problems, warnings = [], []
    train = stats.get("train")
    if train is None or not train.num_examples:
        return problems, warnings
    for name in names:
        feature = _feature(train, name)
        common = _common(feature) if feature is not None else None
        if feature is None or common is None or not common.tot_num_values:
            problems.append(
                f"column {name!r} has no values in the {train.num_examples} training row(s): "
                "fill it, or leave it out of [features]"
            )
            continue
        single = _distinct(feature)
        if single is not None:
            warnings.append(
                f"column {name!r} holds one value ({single[0]!r}) in every training row; it tells the model nothing"
            )
    return problems, warnings


def _types_across_splits(stats: Stats) -> list[str]:
    found = []
    kinds: dict[str, dict[str, int]] = {}
    for split, split_stats in sorted(stats.items()):
        for feature in split_stats.features:
            if feature.path.step and split_stats.num_examples:
                kinds.setdefault(feature.path.step[0], {})[split] = feature.type
    for name, by_split in sorted(kinds.items()):
        if len(set(by_split.values())) > 1:
            shown = ", ".join(f"{TYPE_NAMES.get(t, t)} in split {s}" for s, t in sorted(by_split.items()))
            found.append(f"column {name!r} has a different type in each split ({shown}): write it one way")
    return found


def degenerate(stats: Stats, types: dict[str, int], config: GateConfig) -> tuple[list[str], list[str]]:
    """(problems, warnings) of data too thin to train on; see the module docstring for which is which."""
    problems = _empty_splits(stats) + _types_across_splits(stats)
    warnings: list[str] = []
    for found, noted in (
        _label(stats, config.label, config.task),
        _empty_and_constant(stats, _features(config, types, stats)),
    ):
        problems += found
        warnings += noted
    return problems, warnings
