"""report.html in a real browser: headless Chromium (Debian's `chromium`) renders the report of shifted
traffic through a real `keel serve`; the summary table comes first and the plots are on the page."""

import json
import shutil
import subprocess

import pytest
from PIL import Image

from helpers import keel
from serving_helpers import FEATURES, Server, eval_examples, serving_copy, shifted_instance, wait_for_logged

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 2400)
TRAIN_COLOR = (0x4C, 0x72, 0xB0)  # report.py's training bars (the string plots draw them opaque)

# Appended to a copy of the report: the browser's own layout of the summary table and the plots.
LAYOUT_SCRIPT = """<script>
const box = (e) => { const r = e.getBoundingClientRect(); return {top: r.top, width: r.width, height: r.height}; };
const layout = {
  summary: box(document.getElementById("summary")),
  summary_rows: document.querySelectorAll("#summary tr").length,
  plots: [...document.querySelectorAll("svg")].map(box),
  first_heading: document.querySelector("h2").textContent,
  viewport: window.innerHeight,
};
document.body.insertAdjacentHTML("beforeend", "<pre id='layout'>" + JSON.stringify(layout) + "</pre>");
</script>"""

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={WINDOW[0]},{WINDOW[1]}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def report(penguin_runs, tmp_path_factory):
    """report.html of the eval rows with body_mass_g x1.5 and every other island unseen."""
    root = tmp_path_factory.mktemp("report-browser")
    server = Server(serving_copy(penguin_runs.workdir, root / "work"), root / "logs")
    examples = eval_examples(penguin_runs.workdir)
    try:
        for i, example in enumerate(examples):
            assert server.predict({"instances": [shifted_instance(example, i)]}).status_code == 200
        wait_for_logged(server.log_dir, len(examples))
    finally:
        server.stop()
    result = keel("monitor", "--workdir", penguin_runs.workdir, "--logs", server.log_dir, "--out", root / "out")
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    return root / "out" / "report.html"


def test_chromium_renders_the_summary_table_first_and_the_plots(report):
    probe = report.with_name("layout.html")
    probe.write_text(report.read_text().replace("</body>", LAYOUT_SCRIPT + "</body>"))
    dumped = chromium("--dump-dom", probe.as_uri())
    assert '<pre id="layout">' in dumped.stdout, dumped.stderr[-3000:]
    layout = json.loads(dumped.stdout.split('<pre id="layout">', 1)[1].split("</pre>", 1)[0])
    summary, plots = layout["summary"], layout["plots"]
    assert layout["first_heading"] == "Summary" and layout["summary_rows"] > len(FEATURES)
    assert summary["width"] > 0 and summary["height"] > 0 and summary["top"] < layout["viewport"] / 4
    assert len(plots) == len(FEATURES) and all(p["width"] > 0 and p["height"] > 0 for p in plots)
    assert summary["top"] + summary["height"] <= min(p["top"] for p in plots)

    screenshot = report.with_name("report.png")
    shot = chromium(f"--screenshot={screenshot}", report.as_uri())
    assert screenshot.is_file(), shot.stderr[-3000:]
    image = Image.open(screenshot).convert("RGB")
    assert image.size == WINDOW
    colors = image.getcolors(maxcolors=1 << 20)
    assert any(color == TRAIN_COLOR for _, color in colors), "no training bars drawn on the page"
    assert sum(n for n, color in colors if color != (255, 255, 255)) > 0.02 * WINDOW[0] * WINDOW[1]
