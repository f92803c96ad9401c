"""The parity table, the policy that picks a variant, and report.md / report.json."""

import dataclasses

from keel.export.parity import Measurement

COLUMNS = (
    "variant",
    "size (bytes)",
    "accuracy",
    "drop (pp)",
    "argmax agreement",
    "max |diff|",
    "latency median (us)",
    "latency p99 (us)",
    "passes",
)


def apply_policy(variants: list[Measurement], max_accuracy_drop: float, max_size_bytes: int | None) -> None:
    """Marks each variant passed or not, with the reasons it fails."""
    for m in variants:
        m.reasons = []
        if m.error:
            m.reasons.append(m.error)
        else:
            if m.accuracy_drop > max_accuracy_drop + 1e-12:
                m.reasons.append(
                    f"accuracy drop {m.accuracy_drop * 100:.2f} pp > max_accuracy_drop {max_accuracy_drop * 100:.2f} pp"
                )
            if max_size_bytes is not None and m.size_bytes > max_size_bytes:
                m.reasons.append(f"size {m.size_bytes} bytes > max_size_bytes {max_size_bytes}")
        m.passed = not m.reasons


def choose(variants: list[Measurement], how: str) -> Measurement | None:
    """The passing variant `how` asks for: "smallest" (bytes) or "most_accurate"; None if none passes."""
    passing = [m for m in variants if m.passed]
    if not passing:
        return None
    if how == "most_accurate":
        return min(passing, key=lambda m: (-m.accuracy, m.size_bytes))
    return min(passing, key=lambda m: (m.size_bytes, -m.accuracy))


def _row(m: Measurement) -> list[str]:
    if m.error:
        return [m.name, "-", "-", "-", "-", "-", "-", "-", f"no: {m.error}"]
    size = "-" if m.size_bytes is None else str(m.size_bytes)
    drop = "-" if m.name == "savedmodel" else f"{m.accuracy_drop * 100:+.2f}"
    verdict = "reference" if m.name == "savedmodel" else ("yes" if m.passed else "no: " + "; ".join(m.reasons))
    return [
        m.name,
        size,
        f"{m.accuracy:.4f}",
        drop,
        f"{m.agreement:.4f}",
        f"{m.max_abs_diff:.2e}",
        f"{m.latency_median_us:.1f}",
        f"{m.latency_p99_us:.1f}",
        verdict,
    ]


def table(reference: Measurement, variants: list[Measurement]) -> str:
    """The comparison as a Markdown table, the SavedModel first."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(m)) + " |" for m in [reference, *variants]]
    return "\n".join(lines)


def render_markdown(summary: dict, reference: Measurement, variants: list[Measurement]) -> str:
    """report.md: what was exported, from what, under which policy, and the table."""
    chosen = summary["chosen"] or "none (no variant passes)"
    return "\n".join(
        [
            f"# LiteRT export of {summary['saved_model']}",
            "",
            f"- chosen: **{chosen}** (policy: choose {summary['policy']['choose']}, max_accuracy_drop "
            f"{summary['policy']['max_accuracy_drop']}, max_size_bytes {summary['policy']['max_size_bytes']})",
            f"- eval split: {summary['eval_rows']} rows; representative data: {summary['representative_rows']} "
            "rows of the train split",
            f"- metric: {summary['metric']}; latency: one example per call, LiteRT interpreter with 1 thread, "
            f"{summary['latency_calls']} calls on the host CPU",
            "",
            table(reference, variants),
            "",
        ]
    )


def to_json(summary: dict, reference: Measurement, variants: list[Measurement]) -> dict:
    return {
        **summary,
        "savedmodel": dataclasses.asdict(reference),
        "variants": [dataclasses.asdict(m) for m in variants],
    }
