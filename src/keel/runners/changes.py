"""What changed between two runs of `keel run --watch`: the watched files, the resolved spec, the metric.

Pure functions over plain data (file fingerprints, resolved specs, metric values), so the watch loop
(keel.runners.watch) only gathers inputs and prints what these return.
"""

import difflib
import os
from pathlib import Path

from keel.core.fingerprint import file_sha256

CODE_DIFF_LINES = 20  # at most this many lines of a model module's diff are printed


def stat_of(path: Path) -> tuple[int, int] | None:
    """The (mtime_ns, size) of a file, or None if it does not exist: what a poll compares first."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def fingerprints(paths, previous: dict | None = None) -> dict[str, tuple]:
    """{path: (mtime_ns, size, sha256)} of the files that exist; a file whose stat is unchanged
    since `previous` keeps its sha256 without being read again."""
    previous = previous or {}
    found = {}
    for path in paths:
        stat = stat_of(Path(path))
        if stat is None:
            continue
        known = previous.get(str(path))
        if known and known[:2] == stat:
            found[str(path)] = known
            continue
        try:
            found[str(path)] = (*stat, file_sha256(path))
        except OSError:  # removed between the stat and the read
            continue
    return found


def changed_files(before: dict[str, tuple], after: dict[str, tuple]) -> list[tuple[str, str]]:
    """(path, how) for each file added, removed or whose content (sha256) changed, sorted by path.

    A file touched without a content change is not a change.
    """
    changes = []
    for path in sorted(before.keys() | after.keys()):
        if path not in before:
            changes.append((path, "added"))
        elif path not in after:
            changes.append((path, "removed"))
        elif before[path][2] != after[path][2]:
            changes.append((path, "modified"))
    return changes


def code_diff(old: str, new: str, name: str, limit: int = CODE_DIFF_LINES) -> list[str]:
    """A unified diff of a model module's text, cut to `limit` lines (and a line saying how many more)."""
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{name}", f"b/{name}", n=1, lineterm=""))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return lines


def metric_delta(name: str, value: float | None, previous: float | None, baseline_change: float | None) -> str | None:
    """The judged metric against the previous run and the blessed baseline, as one line.

    `baseline_change` is the Evaluator's own difference against the latest blessed model (None when it
    had no baseline); `previous` is the metric of the previous run (None for the first).
    """
    if value is None:
        return None
    parts = [f"{name} {value:.4f}"]
    if previous is None:
        parts.append("(the first run of this watch)")
    else:
        parts.append(f"{value - previous:+.4f} vs the previous run ({previous:.4f})")
    if baseline_change is None:
        parts.append("no blessed baseline to compare with")
    else:
        parts.append(f"{baseline_change:+.4f} vs the blessed baseline ({value - baseline_change:.4f})")
    return parts[0] + ": " + ", ".join(parts[1:])


def rerun_line(components) -> str:
    """What a run executed and what TFX's cache answered, from its summary's ComponentResults."""
    ran = [c.node_id for c in components if c.status == "ran"]
    cached = [c.node_id for c in components if c.status == "cached"]
    failed = [c.node_id for c in components if c.status == "failed"]
    line = f"ran {', '.join(ran) or 'nothing'}; {len(cached)} cached"
    if failed:
        line += f"; failed {', '.join(failed)}"
    return line
