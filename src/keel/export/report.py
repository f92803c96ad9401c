"""The parity table, the policy that picks a variant, and report.md / report.json.

What is measured and gated depends on the task (keel.export.measures); every Measurement says its task.
"""

import dataclasses

from keel.export.measures import REFERENCE, measure_of
from keel.export.parity import Measurement


def columns(task: str = "classification") -> tuple[str, ...]:
    """The table's header for `task`."""
    return (
        "variant",
        "size (bytes)",
        *measure_of(task).columns,
        "latency median (us)",
        "latency p99 (us)",
        "passes",
    )


COLUMNS = columns()


def apply_policy(
    variants: list[Measurement],
    max_accuracy_drop: float = 0.005,
    max_size_bytes: int | None = None,
    max_abs_diff: float = 0.05,
) -> None:
    """Marks each variant passed or not, with the reasons it fails: the bound of its task
    (`max_accuracy_drop` for classification, `max_abs_diff` for regression) and `max_size_bytes`."""
    bounds = {"max_accuracy_drop": max_accuracy_drop, "max_abs_diff": max_abs_diff}
    for m in variants:
        measure = measure_of(m.task)
        m.reasons = []
        if m.error:
            m.reasons.append(m.error)
        else:
            m.reasons += measure.failures(m, bounds[measure.bound])
            if max_size_bytes is not None and m.size_bytes > max_size_bytes:
                m.reasons.append(f"size {m.size_bytes} bytes > max_size_bytes {max_size_bytes}")
        m.passed = not m.reasons


def choose(variants: list[Measurement], how: str) -> Measurement | None:
    """The passing variant `how` asks for: "smallest" (bytes) or "most_accurate" (the highest accuracy,
    or the lowest RMSE); None if none passes. Ties go to the other measure."""
    passing = [m for m in variants if m.passed]
    if not passing:
        return None
    measure = measure_of(passing[0].task)
    if how == "most_accurate":
        return min(passing, key=lambda m: (measure.rank(m), m.size_bytes))
    return min(passing, key=lambda m: (m.size_bytes, measure.rank(m)))


def _row(m: Measurement) -> list[str]:
    measure = measure_of(m.task)
    if m.error:
        return [m.name, *["-"] * (len(measure.columns) + 3), f"no: {m.error}"]
    size = "-" if m.size_bytes is None else str(m.size_bytes)
    verdict = "reference" if m.name == REFERENCE else ("yes" if m.passed else "no: " + "; ".join(m.reasons))
    return [
        m.name,
        size,
        *measure.cells(m),
        f"{m.latency_median_us:.1f}",
        f"{m.latency_p99_us:.1f}",
        verdict,
    ]


def table(reference: Measurement, variants: list[Measurement]) -> str:
    """The comparison as a Markdown table, the SavedModel first."""
    header = columns(reference.task)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_row(m)) + " |" for m in [reference, *variants]]
    return "\n".join(lines)


def render_markdown(summary: dict, reference: Measurement, variants: list[Measurement]) -> str:
    """report.md: what was exported, from what, under which policy, and the table."""
    measure = measure_of(reference.task)
    chosen = summary["chosen"] or "none (no variant passes)"
    policy = summary["policy"]
    return "\n".join(
        [
            f"# LiteRT export of {summary['saved_model']}",
            "",
            f"- chosen: **{chosen}** (policy: choose {policy['choose']}, {measure.bound} "
            f"{policy[measure.bound]}, max_size_bytes {policy['max_size_bytes']})",
            f"- eval split: {summary['eval_rows']} rows; representative data: {summary['representative_rows']} "
            "rows of the train split",
            f"- {measure.explain(summary['label'])}; latency: one example per call, LiteRT interpreter with 1 thread, "
            f"{summary['latency_calls']} calls on the host CPU",
            "",
            table(reference, variants),
            "",
            "Operators each variant uses (LiteRT builtins; none may be a Select TF op):",
            "",
            *[f"- {m.name}: {', '.join(m.ops)}" for m in variants if m.ops],
            "",
        ]
    )


def measurement_json(m: Measurement) -> dict:
    """A Measurement's report.json form: the fields of its task."""
    values = dataclasses.asdict(m)
    return {name: values[name] for name in measure_of(m.task).fields}


def to_json(summary: dict, reference: Measurement, variants: list[Measurement]) -> dict:
    return {
        **summary,
        "savedmodel": measurement_json(reference),
        "variants": [measurement_json(m) for m in variants],
    }
