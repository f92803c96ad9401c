"""`keel monitor --window`: the logged requests in consecutive windows, each judged against training
(skew) and against the window before it (drift).

A window is a duration (`90s`, `15m`, `1h`, `1d`: windows aligned to multiples of it since the
epoch, by each request's logged time, so 1h windows start on the hour) or a row count (`500`:
consecutive requests until they hold at least that many rows). Empty time windows are skipped.
Each window is judged against the training data of the version that served most of its rows, with
the noise floors at that window's size (keel.monitoring.judge).
"""

import collections
import dataclasses
import datetime
import math
import re

from keel.monitoring import logs, noise
from keel.monitoring.judge import Judge, Judged
from keel.monitoring.logs import LogError, LoggedPredict

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclasses.dataclass(frozen=True)
class WindowSize:
    seconds: float | None = None
    rows: int | None = None

    def describe(self) -> str:
        return f"{self.seconds:g} s" if self.seconds else f"{self.rows} rows"


def parse_window(text: str) -> WindowSize:
    """`1h`, `15m`, `90s`, `2d` (a duration) or `500` (a row count)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if found and found.group(2) and float(found.group(1)) > 0:
        return WindowSize(seconds=float(found.group(1)) * _UNITS[found.group(2)])
    if found and not found.group(2) and "." not in found.group(1) and int(found.group(1)) > 0:
        return WindowSize(rows=int(found.group(1)))
    raise LogError(f"--window: {text!r} is neither a duration (a number and s, m, h or d: 1h) nor a row count (500)")


def iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_rows(predict: LoggedPredict) -> int:
    """How many rows a logged request holds (its inputs' first dimension)."""
    first = next(iter(predict.inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def split(predicts: list[LoggedPredict], size: WindowSize) -> list[list[LoggedPredict]]:
    """`predicts` (oldest first) in consecutive windows; a row-count window's last one may be short."""
    windows: list[list[LoggedPredict]] = []
    if size.seconds:
        keys = []
        for p in predicts:
            key = math.floor(p.time / size.seconds)
            if not keys or keys[-1] != key:
                keys.append(key)
                windows.append([])
            windows[-1].append(p)
        return windows
    rows = size.rows
    for p in predicts:
        if not windows or rows >= size.rows:
            windows.append([])
            rows = 0
        windows[-1].append(p)
        rows += request_rows(p)
    return windows


def bounds(window: list[LoggedPredict], size: WindowSize) -> tuple[float, float]:
    """Where a window starts and ends: its aligned interval for a duration, its first and last request for rows."""
    if size.seconds:
        start = math.floor(window[0].time / size.seconds) * size.seconds
        return start, start + size.seconds
    return window[0].time, window[-1].time


def dominant_version(window: list[LoggedPredict]) -> str:
    """The version that served most of a window's rows (the newest of a tie)."""
    counts = collections.Counter()
    for p in window:
        counts[p.version] += request_rows(p)
    return max(counts, key=lambda v: (counts[v], int(v)))


def version_changes(predicts: list[LoggedPredict]) -> list[dict]:
    """Each time the served version changed: the first request of the new version."""
    changes, last = [], None
    for p in predicts:
        if last is not None and p.version != last:
            changes.append({"time": iso(p.time), "seconds": p.time, "from": last, "to": p.version})
        last = p.version
    return changes


class WindowJudge:
    """Judges consecutive windows, each against its dominant version's training data and the window before."""

    def __init__(self, workdir, size: WindowSize):
        self.workdir = workdir
        self.size = size
        self._judges: dict[str, Judge] = {}
        self.previous: list[LoggedPredict] = []
        self.index = 0

    def judge_of(self, version: str) -> Judge:
        if version not in self._judges:
            self._judges[version] = Judge(self.workdir, version)
        return self._judges[version]

    def next(self, window: list[LoggedPredict], complete: bool = True) -> tuple[dict, Judge, Judged]:
        """The report.json entry of `window`, the Judge used and what it found; `window` becomes the previous one."""
        version = dominant_version(window)
        judge = self.judge_of(version)
        rows = [r for p in window for r in logs.to_rows(p, judge.schema)]
        previous_rows = [r for p in self.previous for r in logs.to_rows(p, judge.schema)]
        judged = judge.judge(rows, previous_rows)
        start, end = bounds(window, self.size)
        alerts = [{**dataclasses.asdict(a), "window": self.index} for a in judged.alerts]
        entry = {
            "index": self.index,
            "from": iso(start),
            "to": iso(end),
            "start_seconds": start,
            "complete": complete,
            "requests": len(window),
            "rows": len(rows),
            "previous_rows": len(previous_rows),
            "version": version,
            "versions": sorted({p.version for p in window}, key=int),
            "features": judged.features,
            "alerts": alerts,
        }
        self.previous = window
        self.index += 1
        return entry, judge, judged


def summary(model: str, entries: list[dict], judge: Judge, judged: Judged, size: WindowSize, changes, truncated):
    """report.json of a windowed run: the last window in the shape of a one-window report, every window
    under `windows`, and `alerts` of every window (each naming its window)."""
    last = entries[-1]
    return {
        "model": model,
        "version": last["version"],
        "requests": last["requests"],
        "rows": last["rows"],
        "window": {"since": None, "from": last["from"], "to": last["to"], "size": size.describe()},
        "previous_rows": last["previous_rows"],
        "thresholds": dataclasses.asdict(judge.thresholds),
        "noise_floors": {"resamples": noise.RESAMPLES, "training_rows": judged.training_rows},
        "training_statistics": str(judge.lineage.train_statistics_file),
        "schema": str(judge.lineage.schema_file),
        "served_features": judged.served,
        "features": last["features"],
        "alerts": [a for e in entries for a in e["alerts"]],
        "accuracy": None,
        "error": None,
        "truncated_files": truncated,
        "windows": entries,
        "version_changes": changes,
    }
