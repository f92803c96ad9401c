"""`keel serve --monitor-every SECONDS`: a `keel monitor --follow` child process beside each served model.

The monitor is a separate process, so TFDV's statistics and the noise floors never hold the
server's interpreter: serving does not wait on it. Each one follows its model's log directory with
windows of SECONDS and writes into LOG_DIR/monitor/: `events.jsonl` (its JSON lines, appended),
`monitor.log` (its stderr), and report.json / report.html, rewritten after each window. The
server stops them (SIGTERM) as it stops; the monitor directory is not read as a log file.
"""

import subprocess
import sys
from pathlib import Path

STOP_SECONDS = 60  # a monitor judging a window finishes it before it stops


def start(sources: list[tuple[Path, Path]], every_seconds: float) -> list[subprocess.Popen]:
    """One follower per (workdir, log dir) in `sources`, with windows of `every_seconds`."""
    started = []
    for workdir, log_dir in sources:
        out = Path(log_dir) / "monitor"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "events.jsonl", "a") as events, open(out / "monitor.log", "a") as errors:
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "keel.cli",
                        "monitor",
                        "--workdir",
                        str(workdir),
                        "--logs",
                        str(log_dir),
                        "--follow",
                        "--window",
                        f"{every_seconds:g}s",
                        "--out",
                        str(out),
                    ],
                    stdout=events,
                    stderr=errors,
                    stdin=subprocess.DEVNULL,
                )
            )
    return started


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each follower, then waits for it (killing one that does not stop in STOP_SECONDS)."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
