"""`keel runs --plot OUT.svg`: the judged metric of every run as a small hand-written SVG chart.

No plotting library: one polyline through the runs that have the metric, a filled green dot for a
blessed run, a hollow red one for a run that was judged and not blessed, the run numbers below.
"""

from pathlib import Path
from xml.sax.saxutils import escape

from keel.core.errors import KeelError
from keel.core.tasks import METRICS

WIDTH, HEIGHT, PAD = 640, 320, 48


def judged_metric(runs) -> str | None:
    """The metric to plot: the judged one (a keel.core.tasks metric) of the newest run that has one."""
    for run in reversed(runs):
        names = [n for n in run.metrics if n in METRICS]
        if names:
            return names[0]
    return None


def runs_svg(runs, metric: str) -> str:
    """The SVG text of `metric` per run (keel.registry.runs.Run), blessed runs marked."""
    points = [(r.index, r.metrics[metric], r.blessed) for r in runs if r.metrics.get(metric) is not None]
    first, last = runs[0].index, runs[-1].index
    low, high = min(v for _, v, _ in points), max(v for _, v, _ in points)
    if high - low < 1e-12:
        low, high = low - 0.5 * (abs(low) or 1) * 0.01, high + 0.5 * (abs(high) or 1) * 0.01
    span_x = max(last - first, 1)

    def x(index: int) -> float:
        return PAD + (index - first) / span_x * (WIDTH - 2 * PAD)

    def y(value: float) -> float:
        return HEIGHT - PAD - (value - low) / (high - low) * (HEIGHT - 2 * PAD)

    direction = METRICS[metric].direction if metric in METRICS else ""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{PAD}" y="20" font-size="13">{escape(metric)} per run{escape(f" ({direction})" if direction else "")}'
        "</text>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
    ]
    for value in (low, (low + high) / 2, high):
        parts.append(f'<text x="{PAD - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.4g}</text>')
    step = max(1, (last - first + 1) // 20)  # at most about 20 run numbers under the axis
    for index in range(first, last + 1, step):
        parts.append(f'<text x="{x(index):.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle">{index}</text>')
    parts.append(f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">run</text>')
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _ in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#4477aa" stroke-width="1.5"/>')
    for index, value, blessed in points:
        style = 'fill="#228833" stroke="#228833"' if blessed else 'fill="white" stroke="#cc3311"'
        kind = "blessed" if blessed else "not blessed" if blessed is False else "not judged"
        parts.append(
            f'<circle cx="{x(index):.1f}" cy="{y(value):.1f}" r="4" {style} stroke-width="1.5" class="{kind}">'
            f"<title>run {index}: {value:.4f}, {kind}</title></circle>"
        )
    legend = WIDTH - PAD - 150
    parts.append(f'<circle cx="{legend}" cy="16" r="4" fill="#228833"/><text x="{legend + 8}" y="20">blessed</text>')
    parts.append(
        f'<circle cx="{legend + 70}" cy="16" r="4" fill="white" stroke="#cc3311" stroke-width="1.5"/>'
        f'<text x="{legend + 78}" y="20">not blessed</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_plot(runs, out: Path) -> tuple[str, int]:
    """Writes the runs' judged metric to `out` (.svg); returns the metric and how many runs have it."""
    out = Path(out)
    if out.suffix.lower() != ".svg":
        raise KeelError(f"--plot {out}: keel draws SVG without a plotting library; name the file *.svg")
    metric = judged_metric(runs)
    if metric is None:
        raise KeelError(f"--plot {out}: no run has an evaluated metric yet (the Evaluator has not judged a model)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(runs_svg(runs, metric))
    return metric, sum(1 for r in runs if r.metrics.get(metric) is not None)
