"""A full disk is recognised wherever it sits in the exception chain TFX re-raises, with the file it names."""

import errno

from keel.core.errors import find_disk_full


def _chained(inner: BaseException) -> RuntimeError:
    try:
        try:
            raise inner
        except BaseException as e:
            raise RuntimeError("Execution 7 failed.") from e
    except RuntimeError as outer:
        return outer


def test_an_os_error_names_its_file():
    inner = OSError(errno.ENOSPC, "No space left on device", "/work/pipeline/Trainer/model/7/saved_model.pb")
    found, path = find_disk_full(_chained(inner))
    assert found is inner and path == "/work/pipeline/Trainer/model/7/saved_model.pb"


def test_tensorflows_message_names_its_file():
    # What tf.io.gfile raises on a full tmpfs (ResourceExhaustedError), as text.
    inner = ValueError("/work/serving/penguin/1796/variables/variables.index; No space left on device")
    found, path = find_disk_full(_chained(inner))
    assert found is inner and path == "/work/serving/penguin/1796/variables/variables.index"


def test_other_errors_are_not_a_full_disk():
    assert find_disk_full(_chained(OSError(errno.EACCES, "Permission denied", "/x"))) is None
    assert find_disk_full(_chained(ValueError("shapes (3,) and (4,) differ"))) is None
