"""One local training process (keel.executors.training.workers): TFX's run_executor, tied to its parent.

A process killed with SIGKILL cannot stop its children, and a training process left alone would wait
for its peers forever. So each one asks Linux to SIGKILL it when its parent dies (PR_SET_PDEATHSIG),
then runs `tfx.scripts.run_executor`, what every replica of a Vertex AI Trainer job runs.
"""

import ctypes
import os
import runpy
import signal
import sys

PARENT_ENV = "KEEL_TRAINER_PID"  # the pid of the process that started this one
PR_SET_PDEATHSIG = 1


def main() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: no such call, the process outlives a killed parent
        pass
    if os.environ.get(PARENT_ENV) and os.getppid() != int(os.environ[PARENT_ENV]):
        sys.exit("keel: the process that started this training process is gone")  # it died before prctl
    sys.argv = ["run_executor", *sys.argv[1:]]
    runpy.run_module("tfx.scripts.run_executor", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
