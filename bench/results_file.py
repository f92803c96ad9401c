"""Writes a benchmark's markdown results and echoes them, so a run's console and file agree."""

from pathlib import Path


def write_results(path: Path, lines: list[str]) -> None:
    """Writes `lines` to `path` (creating bench/results/), prints them and where they went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines).rstrip("\n") + "\n"
    path.write_text(text)
    print(text, end="")
    print(f"written: {path}")
