"""How recorded values read in keel's text output (lineage, registry, diff, the run summary)."""

import time

MISSING = "-"


def number(value) -> str:
    """A metric or count: floats to 4 decimals, anything else as is, "-" for None."""
    if value is None:
        return MISSING
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def signed(value) -> str:
    """A change: "+0.0066", "-16"; "" when there is no number."""
    if isinstance(value, float):
        return f"{value:+.4f}"
    return f"{value:+d}" if isinstance(value, int) else ""


def short_sha(sha: str | None) -> str:
    """The first 12 hex digits of a digest or commit, or "-"."""
    return sha[:12] if sha else MISSING


def utc(ms: int) -> str:
    """Milliseconds since the epoch (ML Metadata's clock) as UTC date and time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
