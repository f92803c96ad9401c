"""`keel monitor --follow`: judges each window as the server's request logs fill it, as JSON lines.

keel serve writes `prediction_log-<UTC start>-<pid>-<n>.tfrecord` and flushes whole records, so
every record before a torn tail is final. Each poll reads the records added to each file since the
last poll; a file is complete (never read again) once its writer moved on to a later file (the same
pid, a higher n) or its writer is no longer running. A time window is judged once a later request
was read or `GRACE_SECONDS` after it ended (the writer flushes within milliseconds), a row-count
window once it holds its rows. stdout gets one JSON object per line: `{"event": "window", ...}` per
window, `{"event": "alert", ...}` per alert, and on SIGTERM or SIGINT `{"event": "stopped", ...}`
naming the requests of the unfinished window, which are not judged; then the exit status is 0.
out/report.json and report.html are rewritten after each window.
"""

import json
import math
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

from keel.monitoring import logs, windows
from keel.monitoring.logs import LogError
from keel.monitoring.report import write_reports

GRACE_SECONDS = 2.0
POLL_SECONDS = 1.0
_NAME = re.compile(r"prediction_log-\d{8}T\d{6}Z-(\d+)-(\d+)\.tfrecord")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_complete(name: str, names: list[str], alive=_alive) -> bool:
    """Whether log file `name` will get no more records: its writer (pid) has a later file or is gone.
    A file not named by keel serve (TF Serving's own) is complete once a later-named file exists."""
    found = _NAME.fullmatch(name)
    if not found:
        return any(other > name for other in names)
    pid, number = int(found.group(1)), int(found.group(2))
    later = any((m := _NAME.fullmatch(o)) and int(m.group(1)) == pid and int(m.group(2)) > number for o in names)
    return later or not alive(pid)


def due(pending: list, size: windows.WindowSize, now: float) -> int:
    """How many of `pending` (oldest first) form the next window ready to judge; 0 if none is ready."""
    if not pending:
        return 0
    if size.seconds:
        end = (math.floor(pending[0].time / size.seconds) + 1) * size.seconds
        inside = sum(1 for p in pending if p.time < end)
        return inside if inside < len(pending) or now >= end + GRACE_SECONDS else 0
    rows = 0
    for count, p in enumerate(pending, 1):
        rows += windows.request_rows(p)
        if rows >= size.rows:
            return count
    return 0


def _line(event: dict) -> None:
    print(json.dumps(event, sort_keys=True), flush=True)


class _Reader:
    """The new records of a log directory since the last call."""

    def __init__(self, directory: Path, version: str | None):
        self.directory = directory
        self.version = version
        self.consumed: dict[str, int] = {}
        self.done: set[str] = set()

    def new(self) -> list:
        if not self.directory.is_dir():
            return []
        names = sorted(p.name for p in self.directory.iterdir() if p.is_file() and not p.name.startswith("."))
        found = []
        for name in names:
            if name in self.done:
                continue
            complete = is_complete(name, names)  # before reading: records written after it are read next time
            predicts, _ = logs.read_file(self.directory / name)
            found += predicts[self.consumed.get(name, 0) :]
            self.consumed[name] = len(predicts)
            if complete:
                self.done.add(name)
        return sorted((p for p in found if self.version in (None, p.version)), key=lambda p: p.time)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`. Installed again after each window is judged: on TFX 1.21 a follower
    stopped after judging died of the SIGTERM (exit -15) instead of reporting, as if the libraries the
    judging runs had put the default disposition back (plain Beam does not; which one does is not known)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())


def follow(workdir: Path, log_dir: Path, out: Path, window: str, version: str | None = None) -> int:
    """Judges each window of `log_dir`'s requests as it fills, printing JSON lines, until SIGTERM or SIGINT."""
    size = windows.parse_window(window)
    stop = threading.Event()
    _stop_on_signals(stop)
    reader = _Reader(Path(log_dir), version)
    judging = windows.WindowJudge(workdir, size)
    pending, entries, models, all_predicts = [], [], set(), []
    _line({"event": "started", "logs": str(log_dir), "window": size.describe(), "out": str(out)})
    while not stop.is_set():
        new = reader.new()
        models |= {p.model for p in new}
        if len(models) > 1:
            raise LogError(f"--logs: {log_dir} holds requests for {len(models)} models ({', '.join(sorted(models))})")
        pending = sorted(pending + new, key=lambda p: p.time)
        all_predicts += new
        while not stop.is_set() and (count := due(pending, size, time.time())):
            group, pending = pending[:count], pending[count:]
            entry, judge, judged = judging.next(group)
            _stop_on_signals(stop)
            entries.append(entry)
            shifted = [
                f"{name}:{kind}"
                for name, m in entry["features"].items()
                for kind, v in m.items()
                if v["verdict"] == "shifted"
            ]
            _line(
                {
                    "event": "window",
                    **{k: v for k, v in entry.items() if k not in ("features", "alerts")},
                    "alerts": len(entry["alerts"]),
                    "shifted": shifted,
                }
            )
            for alert in entry["alerts"]:
                _line({"event": "alert", "from": entry["from"], "to": entry["to"], **alert})
            changes = windows.version_changes(sorted(all_predicts, key=lambda p: p.time))
            summary = windows.summary(next(iter(models)), entries, judge, judged, size, changes, [])
            write_reports(Path(out), summary, judge.train, judged.serving)
        stop.wait(POLL_SECONDS)
    pending += reader.new()  # what was logged up to the stop, so the unjudged count is complete
    _line(
        {
            "event": "stopped",
            "windows": len(entries),
            "unreported_requests": len(pending),
            "unreported_rows": sum(windows.request_rows(p) for p in pending),
            "why": "the current window had not ended; its requests were not judged" if pending else "nothing pending",
        }
    )
    sys.stdout.flush()
    return 0
