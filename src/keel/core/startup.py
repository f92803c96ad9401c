"""TensorFlow's import, without the native start-up lines it prints whatever TF_CPP_MIN_LOG_LEVEL says.

TensorFlow >= 2.20 logs through absl before absl's logging is initialised, so `import tensorflow`
writes "WARNING: All log messages before absl::InitializeLog() ..." and INFO lines (oneDNN, CUDA
drivers) straight to file descriptor 2, once per native library. They are not the user's concern
and would bury keel's one-line errors.
"""

import importlib
import os
import re
import sys
import tempfile

STARTUP_CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow, dropping the INFO-level native lines it writes to stderr meanwhile."""
    import_without_startup_chatter("tensorflow")


def import_without_startup_chatter(module: str) -> None:
    """Imports `module` with fd 2 captured, then passes on every line it wrote but start-up chatter."""
    if module in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            importlib.import_module(module)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not STARTUP_CHATTER.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
