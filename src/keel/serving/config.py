"""`keel serve`'s settings and their defaults, in one place: the CLI's flags read their defaults here.

Nothing here imports TensorFlow, so `keel --help` stays fast.
"""

import dataclasses
from pathlib import Path

from keel.core.errors import ServingError


@dataclasses.dataclass
class ServeConfig:
    """Everything `keel serve` can be told; the command line's defaults are these."""

    workdir: Path | None = None  # the workdir of a single model
    model: str | None = None
    workdirs: tuple[Path, ...] = ()  # every workdir served (--workdir repeated); empty: just `workdir`
    model_config_file: Path | None = None  # TF Serving's model config file, instead of workdirs
    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int = 8500  # TF Serving's gRPC port; 0 picks a free one, -1 turns gRPC off
    log_dir: Path | None = None  # default WORKDIR/request_logs/NAME; with several models, LOG_DIR/NAME
    log_sample_rate: float = 1.0  # share of requests logged; 0 turns logging off
    log_max_bytes: int = 64 << 20  # rotate log files at this size
    max_batch_size: int = 64  # rows per model call; 1 turns micro-batching off
    batch_wait_ms: float = 2.0  # longest a request waits for others to join its batch
    max_body_bytes: int = 4 << 20  # larger predict bodies get 413
    poll_seconds: float = 2.0  # how often to look for a new version
    monitor_every: float = 0  # seconds per `keel monitor --follow` window beside the server; 0: none

    def __post_init__(self):
        checks = [
            ("--port", self.port, 0 <= self.port <= 65535, "0-65535"),
            ("--grpc-port", self.grpc_port, -1 <= self.grpc_port <= 65535, "0-65535, or -1 for no gRPC"),
            ("--log-sample-rate", self.log_sample_rate, 0 <= self.log_sample_rate <= 1, "between 0 and 1"),
            ("--log-max-bytes", self.log_max_bytes, self.log_max_bytes >= 1024, "at least 1024"),
            ("--max-batch-size", self.max_batch_size, self.max_batch_size >= 1, "at least 1"),
            ("--batch-wait-ms", self.batch_wait_ms, self.batch_wait_ms >= 0, "0 or more"),
            ("--max-body-bytes", self.max_body_bytes, self.max_body_bytes >= 1, "at least 1"),
            ("--poll-seconds", self.poll_seconds, self.poll_seconds > 0, "more than 0"),
            ("--monitor-every", self.monitor_every, self.monitor_every >= 0, "0 (off) or more seconds"),
        ]
        for flag, value, ok, expected in checks:
            if not ok:
                raise ServingError(f"{flag}: got {value}; expected {expected}")


DEFAULTS = ServeConfig(workdir=Path("."))
