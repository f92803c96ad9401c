"""report.json and report.html: alerts, per-feature measurements, train vs serving distributions, and
with labels the live accuracy (classification) or live MAE and RMSE (regression).

The plots are inline SVG drawn from the statistics TFDV computed (standard histograms for numbers,
value frequencies for strings), so the report is one self-contained file that opens offline.
"""

import html
import json
from pathlib import Path

from tensorflow_metadata.proto.v0 import statistics_pb2

from keel.monitoring.checks import _MEASURES

_TRAIN, _SERVING = "#4c72b0", "#dd8452"


def _features(stats: statistics_pb2.DatasetFeatureStatisticsList) -> dict:
    return {".".join(f.path.step) or f.name: f for f in stats.datasets[0].features} if stats.datasets else {}


def _numeric_svg(train, serving) -> str:
    hists = []
    for feature in (train, serving):
        h = next((h for h in feature.num_stats.histograms if h.type == h.STANDARD), None) if feature else None
        hists.append(h)
    buckets = [b for h in hists if h for b in h.buckets]
    if not buckets:
        return "<p>no values</p>"
    low, high = min(b.low_value for b in buckets), max(b.high_value for b in buckets)
    span = (high - low) or 1.0
    width, height = 420, 120
    densities = []
    for h in hists:
        total = sum(b.sample_count for b in h.buckets) if h else 0
        densities.append(
            [(b, b.sample_count / total / max((b.high_value - b.low_value) / span, 1e-9)) for b in h.buckets]
            if total
            else []
        )
    top = max((d for ds in densities for _, d in ds), default=1.0) or 1.0
    bars = []
    for color, ds in zip((_TRAIN, _SERVING), densities, strict=True):
        for b, d in ds:
            x = (b.low_value - low) / span * width
            w = max((b.high_value - b.low_value) / span * width, 1.0)
            bar_height = d / top * (height - 10)
            bars.append(
                f'<rect x="{x:.1f}" y="{height - bar_height:.1f}" width="{w:.1f}" height="{bar_height:.1f}" '
                f'fill="{color}" fill-opacity="0.5"/>'
            )
    axis = (
        f'<text x="0" y="{height + 14}" font-size="11">{low:.4g}</text>'
        f'<text x="{width}" y="{height + 14}" font-size="11" text-anchor="end">{high:.4g}</text>'
    )
    return f'<svg width="{width}" height="{height + 18}">{"".join(bars)}{axis}</svg>'


def _frequencies(feature) -> dict[str, float]:
    if feature is None:
        return {}
    stats = feature.string_stats
    counts = {b.label: b.sample_count for b in stats.rank_histogram.buckets} or {
        b.value: b.frequency for b in stats.top_values
    }
    total = sum(counts.values()) or 1.0
    return {k: v / total for k, v in counts.items()}


def _categorical_svg(train, serving) -> str:
    freqs = [_frequencies(train), _frequencies(serving)]
    labels = sorted(set(freqs[0]) | set(freqs[1]), key=lambda k: -max(freqs[0].get(k, 0), freqs[1].get(k, 0)))[:20]
    if not labels:
        return "<p>no values</p>"
    row, width = 18, 420
    parts = []
    for i, label in enumerate(labels):
        y = i * row
        parts.append(f'<text x="0" y="{y + 12}" font-size="11">{html.escape(label[:24])}</text>')
        for j, (color, f) in enumerate(zip((_TRAIN, _SERVING), freqs, strict=True)):
            w = f.get(label, 0.0) * (width - 150)
            parts.append(f'<rect x="150" y="{y + j * 8}" width="{w:.1f}" height="7" fill="{color}"/>')
    return f'<svg width="{width}" height="{len(labels) * row}">{"".join(parts)}</svg>'


def describe_error(error: dict) -> str:
    """The console line of live regression error (the summary's "error")."""
    line = f"live MAE {error['mae']:.4g}, RMSE {error['rmse']:.4g} on {error['labelled_rows']} labelled rows"
    if error["eval"] is None:
        return line + f" (no eval {error['metric']} recorded)"
    return line + f" (eval {error['metric']} {error['eval']:.4g}; alert above {error['bound']:.4g})"


FLAGGED_ROW = ' class="flagged"'


def flagged_trends(windows: list[dict]) -> list[tuple[str, str]]:
    """The (feature, check) pairs shifted in at least one window, in feature order."""
    return sorted(
        {
            (name, kind)
            for w in windows
            for name, measured in w["features"].items()
            for kind, m in measured.items()
            if m["verdict"] == "shifted"
        }
    )


def _trend_svg(windows: list[dict], feature: str, kind: str, changes: list[dict]) -> str:
    """One check's value per window (line and dots), its threshold (dashed) and noise floor (dotted),
    and a vertical marker where the served version changed."""
    width, height, left, bottom = 480, 140, 40, 18
    points = [(w, w["features"].get(feature, {}).get(kind)) for w in windows]
    top = (
        max(
            [m["value"] for _, m in points if m]
            + [m["threshold"] for _, m in points if m]
            + [m["noise_floor"] for _, m in points if m]
            + [1e-9]
        )
        * 1.1
    )
    starts = [w["start_seconds"] for w in windows]
    first, span = starts[0], (starts[-1] - starts[0]) or 1.0

    def x(seconds: float) -> float:
        return left + (seconds - first) / span * (width - left - 10) if len(windows) > 1 else left + 10

    def y(value: float) -> float:
        return (height - bottom) * (1 - value / top)

    def line(key: str, style: str) -> str:
        xy = " ".join(f"{x(w['start_seconds']):.1f},{y(m[key]):.1f}" for w, m in points if m)
        return f'<polyline points="{xy}" fill="none" {style}/>'

    parts = [
        line("threshold", 'stroke="#c0392b" stroke-dasharray="6 3"'),
        line("noise_floor", 'stroke="#888" stroke-dasharray="2 2"'),
        line("value", f'stroke="{_SERVING}" stroke-width="2"'),
    ]
    for w, m in points:
        if m:
            color = "#c0392b" if m["verdict"] == "shifted" else _SERVING
            parts.append(
                f'<circle cx="{x(w["start_seconds"]):.1f}" cy="{y(m["value"]):.1f}" r="3.5" fill="{color}">'
                f"<title>window {w['index']} {w['from']}: {m['value']:.3f} ({html.escape(m['verdict'])})</title></circle>"
            )
    for change in changes:
        if first <= change["seconds"] <= starts[-1] + (starts[-1] - starts[0]) / max(len(starts) - 1, 1):
            cx = min(x(change["seconds"]), width - 10)
            parts.append(
                f'<line class="version-change" x1="{cx:.1f}" x2="{cx:.1f}" y1="0" y2="{height - bottom}" '
                f'stroke="#2c3e50"/><text x="{cx + 2:.1f}" y="10" font-size="10">v{html.escape(change["to"])}</text>'
            )
    parts.append(
        f'<text x="0" y="{y(0):.1f}" font-size="10">0</text><text x="0" y="10" font-size="10">{top:.2g}</text>'
        f'<text x="{left}" y="{height}" font-size="10">{html.escape(windows[0]["from"])}</text>'
        f'<text x="{width - 10}" y="{height}" font-size="10" text-anchor="end">{html.escape(windows[-1]["from"])}</text>'
    )
    return f'<svg class="trend" width="{width}" height="{height}">{"".join(parts)}</svg>'


def _trends_html(summary: dict) -> str:
    windows = summary.get("windows")
    if not windows:
        return ""
    rows = "".join(
        f"<tr{FLAGGED_ROW if w['alerts'] else ''}><td>{w['index']}</td><td>{html.escape(w['from'])}</td>"
        f"<td>{html.escape(w['to'])}</td><td>{w['rows']}</td><td>{html.escape(w['version'])}</td>"
        f"<td>{len(w['alerts'])}</td></tr>"
        for w in windows
    )
    plots = (
        "".join(
            f'<div class="feature flagged"><h3>{html.escape(name)}: {kind} over time</h3>'
            f"{_trend_svg(windows, name, kind, summary.get('version_changes', []))}</div>"
            for name, kind in flagged_trends(windows)
        )
        or "<p>no check shifted in any window</p>"
    )
    return f"""<h2>Windows</h2>
<table id="windows"><tr><th>window</th><th>from</th><th>to</th><th>rows</th><th>version</th><th>alerts</th></tr>{rows}</table>
<p>Each flagged check per window: its value (solid), the threshold (dashed) and the noise floor at that
window's size (dotted); red dots are shifted windows, vertical lines where the served version changed.</p>
{plots}
"""


def write_reports(out: Path, summary: dict, train, serving) -> tuple[Path, Path]:
    """Writes report.json (`summary`) and report.html into `out`; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    train_features, serving_features = _features(train), _features(serving)
    alert_rows = (
        "".join(
            f"<tr><td>{html.escape(a['feature'])}</td><td>{a['kind']}</td><td>{a['reason']}</td>"
            f"<td>{html.escape(a.get('tfdv_description') or a['description'])}</td></tr>"
            for a in summary["alerts"]
        )
        or '<tr><td colspan="4">no alerts</td></tr>'
    )
    summary_rows = "".join(
        f"<tr{FLAGGED_ROW if m['verdict'] == 'shifted' else ''}><td>{html.escape(name)}</td><td>{kind}</td>"
        f"<td>{m['value']:.3f}</td><td>{m['threshold']:g}</td><td>{m['noise_floor']:.3f}</td><td>{m['rows']}</td>"
        f"<td>{html.escape(m['verdict'])}</td></tr>"
        for name, measured in summary["features"].items()
        for kind, m in measured.items()
    )
    sections = []
    for name in summary["served_features"]:
        t, s = train_features.get(name), serving_features.get(name)
        numeric = (t or s) is not None and (t or s).HasField("num_stats")
        plot = _numeric_svg(t, s) if numeric else _categorical_svg(t, s)
        measured = summary["features"].get(name, {})
        lines = [
            f"{kind}: {_MEASURES.get(m['measure'], m['measure'])} {m['value']:.4f} (threshold {m['threshold']:g}, noise floor "
            f"{m['noise_floor']:.4f}): {m['verdict']}"
            for kind, m in measured.items()
        ]
        flagged = any(a["feature"] == name for a in summary["alerts"])
        sections.append(
            f'<div class="feature{" flagged" if flagged else ""}"><h3>{html.escape(name)}</h3>'
            f"{plot}<p>{'<br>'.join(lines) or 'no comparison'}</p></div>"
        )
    accuracy = summary.get("accuracy")
    labelled_html = (
        f"<p>live accuracy {accuracy['live']:.4f} on {accuracy['labelled_rows']} labelled rows; "
        f"eval accuracy {accuracy['eval']:.4f}</p>"
        if accuracy and accuracy.get("live") is not None
        else ""
    )
    error = summary.get("error")
    if error:
        labelled_html = f"<p>{html.escape(describe_error(error))}</p>"
    window = summary["window"]
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>keel monitor: {html.escape(summary["model"])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
.feature {{ display: inline-block; margin: 0 2em 2em 0; vertical-align: top; max-width: 440px; }}
.flagged h3, tr.flagged td {{ color: #c0392b; }} .key span {{ padding: 0 6px; color: white; }}
</style></head><body>
<h1>{html.escape(summary["model"])} version {summary["version"]}: {len(summary["alerts"])} alert(s)</h1>
<p>{summary["rows"]} rows in {summary["requests"]} requests, {html.escape(window["from"] or "-")} to
{html.escape(window["to"] or "-")}; previous window: {summary["previous_rows"]} rows.</p>
{labelled_html}
<h2>Summary</h2>
<table id="summary"><tr><th>feature</th><th>check</th><th>value</th><th>threshold</th><th>noise floor</th>
<th>rows</th><th>verdict</th></tr>{summary_rows}</table>
<p>An alert needs the value above the threshold and above the noise floor: what random windows of
training rows of the same size exceed {summary["thresholds"]["false_alarm_rate"]:g} of the time.</p>
{_trends_html(summary)}
<h2>Training vs serving{" (last window)" if summary.get("windows") else ""}</h2>
<p class="key"><span style="background:{_TRAIN}">training</span> <span style="background:{_SERVING}">serving</span></p>
{"".join(sections)}
<h2>Alerts, in TFDV's words</h2>
<table><tr><th>feature</th><th>kind</th><th>reason</th><th>TFDV's description</th></tr>{alert_rows}</table>
</body></html>
"""
    html_path.write_text(page)
    return html_path, json_path
