"""keel's commands start without TensorFlow's native start-up lines on stderr (TF >= 2.20 prints them
whatever TF_CPP_MIN_LOG_LEVEL says), and without hiding anything else written there."""

import subprocess
import sys

from keel.core.quiet import STARTUP_CHATTER

SEEN_ON_TF_2_21 = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796163346.161991   21791 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796163346.162202   21791 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    "will not be used.",
]


def test_only_info_level_start_up_lines_are_dropped():
    assert all(STARTUP_CHATTER.match(line) for line in SEEN_ON_TF_2_21)
    for kept in [
        "W0000 00:00:1796163346.162202   21791 gpu_device.cc:2341] Cannot dlopen some GPU libraries.",
        "E0000 00:00:1796163346.162202   21791 cuda_dnn.cc:8310] Unable to register cuDNN factory",
        "error: train.accelerator = 'tpu': this machine has no TPU",
        "Traceback (most recent call last):",
    ]:
        assert not STARTUP_CHATTER.match(kept), kept


def test_a_command_that_loads_tensorflow_prints_only_its_own_error_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli", "lineage", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path}: no ML Metadata store here (run `keel run SPEC` first)"]


def test_other_writes_to_stderr_during_the_import_are_passed_on(tmp_path):
    (tmp_path / "noisy.py").write_text(
        "import os, sys\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1796163346.161991   21791 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'E0000 00:00:1796163346.162202   21791 cuda_dnn.cc:8310] a real problem\\n')\n"
        "print('a Python warning', file=sys.stderr)\n"
    )
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from keel.core.quiet import import_without_startup_chatter; "
        "os.write(2, b'before\\n'); import_without_startup_chatter('noisy'); os.write(2, b'after\\n')"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "before",
        "E0000 00:00:1796163346.162202   21791 cuda_dnn.cc:8310] a real problem",
        "a Python warning",
        "after",
    ]
