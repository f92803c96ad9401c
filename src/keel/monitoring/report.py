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
<h2>Training vs serving</h2>
<p class="key"><span style="background:{_TRAIN}">training</span> <span style="background:{_SERVING}">serving</span></p>
{"".join(sections)}
<h2>Alerts, in TFDV's words</h2>
<table><tr><th>feature</th><th>kind</th><th>reason</th><th>TFDV's description</th></tr>{alert_rows}</table>
</body></html>
"""
    html_path.write_text(page)
    return html_path, json_path
