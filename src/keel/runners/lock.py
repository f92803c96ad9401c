"""One run per workdir: SQLite ML Metadata tolerates one writer, so a second run fails clearly."""

import contextlib
import fcntl
import os
from pathlib import Path

from keel.core.errors import KeelError


@contextlib.contextmanager
def workdir_lock(workdir: Path):
    """Holds `workdir`'s lock (creating the workdir) or raises KeelError naming the pid that holds it."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise KeelError(
                f"{workdir} is in use by another keel run (pid {holder}); "
                "wait for it to finish or use another --workdir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
