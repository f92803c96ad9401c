"""The errors keel reports to users as one line, with exit code 2, and no traceback."""

import errno
import re


class KeelError(Exception):
    """A problem with the user's input (spec, data, model code): reported as one line, exit 2."""


class SpecError(KeelError):
    """The spec file is malformed or names something that does not exist."""


class DataError(KeelError):
    """The data does not match what the spec or the schema expects."""


class ModelCodeError(KeelError):
    """The user's model module is missing a function or raised while building the model."""


class ExportError(KeelError):
    """A model cannot be exported for mobile, or no exported variant meets the spec's policy."""


def find_keel_error(exc: BaseException) -> KeelError | None:
    """Returns the KeelError behind `exc` (itself, or in its cause/context chain), if any.

    TFX re-raises component failures wrapped in its own exceptions; the user-facing message is
    the KeelError a component raised.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeelError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class TrainingError(KeelError):
    """Training across processes stopped: one of them failed or was killed."""


class AcceleratorError(KeelError):
    """The spec asks for an accelerator (TPU, GPU) this machine cannot provide."""


class WorkdirError(KeelError):
    """No workdir, or more than one, matches what a command was given (--workdir, a spec, the search)."""


class ServingError(KeelError):
    """Nothing servable where `keel serve` was pointed, or a `keel serve` setting out of range."""


class DiskFullError(KeelError):
    """A write ran out of space (ENOSPC): nothing is wrong with the input; free space and run again."""


NO_SPACE = "No space left on device"  # strerror(ENOSPC), also in TensorFlow's file-system errors


def find_disk_full(exc: BaseException) -> tuple[BaseException, str | None] | None:
    """The exception in `exc`'s cause/context chain that says the disk is full, and the file it names
    (None when it names none); None when no exception in the chain is about a full disk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return exc, exc.filename
        if NO_SPACE in str(exc):  # TensorFlow's file system says "PATH; No space left on device"
            path = re.search(rf"(/[^\s;'\"]+); {NO_SPACE}", str(exc))
            return exc, path.group(1) if path else None
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
