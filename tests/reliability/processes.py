"""`keel run` as a subprocess a fault test can watch and interrupt."""

import signal
import subprocess
import sys
import time
from pathlib import Path


class Run:
    """`keel run` in a subprocess whose progress lines are read as they come."""

    def __init__(self, spec: Path, workdir: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keel.cli", "run", str(spec), "--workdir", str(workdir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, *words: str, timeout: float = 600) -> None:
        """Reads progress until a line holds every word (the component has started)."""
        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.lines.append(line)
            if all(w in line for w in words):
                return
            assert time.monotonic() < deadline, "".join(self.lines)
        raise AssertionError(f"keel run ended before {words}: {''.join(self.lines)}{self.process.stderr.read()}")

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(60)

    def finish(self) -> subprocess.CompletedProcess:
        out, err = self.process.communicate(timeout=900)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, "".join(self.lines) + out, err)
