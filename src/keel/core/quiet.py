"""Keeps library logging off the console: the one place keel quiets TensorFlow, TFX, Beam and absl.

- `quiet_process()`: set first by the `keel` command (before TensorFlow loads).
- `import_tensorflow_quietly()`: TensorFlow's import without its native start-up lines; afterwards its
  Python logger reports errors only.
- `library_logs_to(log_file, console)`: while a pipeline runs, every library log line goes to
  `log_file` and only what `console` (a logging.Handler) picks reaches the console.

TensorFlow >= 2.20 logs through absl before absl's logging is initialised, so `import tensorflow`
writes "WARNING: All log messages before absl::InitializeLog() ..." and INFO lines (oneDNN, CUDA
drivers) straight to file descriptor 2, once per native library, whatever TF_CPP_MIN_LOG_LEVEL says.
They are not the user's concern and would bury keel's one-line errors.
"""

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

STARTUP_CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "
)


def quiet_process() -> None:
    """No TensorFlow C++ start-up lines (TF < 2.20), no FutureWarning / DeprecationWarning notices
    (google-cloud's Python-version notices among them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow, dropping the INFO-level native lines it writes to stderr meanwhile.

    Its Python logger then reports errors only: TFMA's result reader, for one, logs a deprecation
    notice through it on every query. `library_logs_to` sends its every line to the log file again.
    """
    import_without_startup_chatter("tensorflow")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


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


@contextlib.contextmanager
def library_logs_to(log_file: Path, console: logging.Handler):
    """Sends every library log line (and Python warning) to `log_file`; only `console` sees them besides.

    Everything is restored on exit: the root logger's level and handlers, absl's verbosity and
    TensorFlow's logger.
    """
    from absl import logging as absl_logging

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for h in saved[1]:
        root.removeHandler(h)
    root.addHandler(file_handler)
    root.addHandler(console)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # Through absl's verbosity flag, not Logger.setLevel: TensorFlow saves and restores that flag
    # around SavedModel traversal, which would otherwise reset the level to WARNING mid-run.
    absl_saved = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    # TensorFlow's logger writes to the console itself; point it at the log file instead.
    tf_logger = logging.getLogger("tensorflow")
    tf_saved = (list(tf_logger.handlers), tf_logger.propagate, tf_logger.level)
    for h in tf_saved[0]:
        tf_logger.removeHandler(h)
    tf_logger.propagate = False
    tf_logger.setLevel(logging.NOTSET)
    tf_logger.addHandler(file_handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        logging.captureWarnings(False)
        absl_logging.set_verbosity(absl_saved)
        tf_logger.removeHandler(file_handler)
        for h in tf_saved[0]:
            tf_logger.addHandler(h)
        tf_logger.propagate = tf_saved[1]
        tf_logger.setLevel(tf_saved[2])
        root.removeHandler(file_handler)
        root.removeHandler(console)
        file_handler.close()
        root.setLevel(saved[0])
        for h in saved[1]:
            root.addHandler(h)
