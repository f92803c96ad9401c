"""Request logs in TF Serving's own format: PredictionLog protos in TFRecord files.

Each sampled request becomes one `tensorflow.serving.PredictionLog` with the PredictRequest (model
name, version, signature, input tensors) and the PredictResponse. `log_metadata.timestamp_secs` is
the request's time, and the request id is `PredictRequest.client_id`, the field TF Serving clients
use to identify themselves, so labels can be joined to requests later. Files are named
`prediction_log-<UTC start>-<pid>-<n>.tfrecord` and rotated when one reaches `max_bytes`; a
writer thread does the encoding and writing so requests do not wait on the disk.

Durability: the writer takes everything queued, writes it and flushes it to the operating system,
then takes the next lot, so a `kill -9` of the server loses only records not yet flushed. At most
`max_unflushed` records (one full batch at `keel serve`'s default --max-batch-size) are ever
queued or written but unflushed: `add` waits for the writer when that many are, so a request is
answered only once at most `max_unflushed` answered records, its own included, could be lost.
A graceful stop (SIGTERM) loses none: `close` writes and flushes everything queued.
"""

import dataclasses
import logging
import os
import queue
import random
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from keel.serving import tensors

log = logging.getLogger("keel.serve")

FILE_GLOB = "prediction_log-*.tfrecord"
MAX_UNFLUSHED = 64  # records queued or written but not yet flushed, at most: a full default batch


@dataclasses.dataclass
class LoggedRequest:
    request_id: str
    time: float
    model: str
    version: str
    signature: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def to_prediction_log(entry: LoggedRequest) -> prediction_log_pb2.PredictionLog:
    """The PredictionLog proto TF Serving's request logger would write for `entry`."""
    record = prediction_log_pb2.PredictionLog()
    meta = record.log_metadata
    meta.model_spec.name = entry.model
    meta.model_spec.version.value = int(entry.version)
    meta.model_spec.signature_name = entry.signature
    meta.saved_model_tags.append("serve")
    meta.timestamp_secs = int(entry.time)
    request = record.predict_log.request
    request.model_spec.CopyFrom(meta.model_spec)
    request.client_id = entry.request_id.encode()
    for name, values in entry.inputs.items():
        tensors.fill(request.inputs[name], values)
    response = record.predict_log.response
    response.model_spec.CopyFrom(meta.model_spec)
    for name, values in entry.outputs.items():
        tensors.fill(response.outputs[name], values)
    return record


class RequestLogWriter:
    """Writes a sampled share of requests as PredictionLog TFRecords under `directory`."""

    def __init__(
        self, directory: Path, sample_rate: float = 1.0, max_bytes: int = 64 << 20, max_unflushed: int = MAX_UNFLUSHED
    ):
        self.directory = Path(directory)
        self.sample_rate = sample_rate
        self.max_bytes = max_bytes
        self.queued = 0
        self.written = 0
        self._queue: queue.Queue[LoggedRequest | None] = queue.Queue()
        self._unflushed = threading.BoundedSemaphore(max(1, max_unflushed))
        self._thread = threading.Thread(target=self._write_all, name="keel-request-log", daemon=True)
        self._file_number = 0
        self._writer = None
        self._bytes = 0

    def start(self) -> None:
        if self.sample_rate > 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._thread.start()

    def add(self, entry: LoggedRequest) -> None:
        """Queues `entry` for writing if it falls in the sample, first waiting while `max_unflushed`
        records are queued or unflushed."""
        if self.sample_rate >= 1 or random.random() < self.sample_rate:
            if self._thread.is_alive():
                self._unflushed.acquire()
            self.queued += 1
            self._queue.put(entry)

    def close(self) -> None:
        """Writes what is queued, then closes the current file."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _open(self) -> None:
        self._file_number += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.directory / f"prediction_log-{stamp}-{os.getpid()}-{self._file_number:05d}.tfrecord"
        self._writer = tf.io.TFRecordWriter(str(path))
        self._bytes = 0

    def _write_all(self) -> None:
        while True:
            entries = [self._queue.get()]
            while entries[-1] is not None and not self._queue.empty():
                entries.append(self._queue.get())
            closing = entries[-1] is None
            records = entries[:-1] if closing else entries
            for entry in records:
                try:
                    self._write(entry)
                except Exception:  # a logging failure must not take the server down; it is reported in its log
                    log.exception("could not write the request log record for %s", entry.request_id)
            if self._writer is not None:
                self._writer.flush()
            for _ in records:
                self._unflushed.release()
            if closing:
                break
        if self._writer is not None:
            self._writer.close()

    def _write(self, entry: LoggedRequest) -> None:
        data = to_prediction_log(entry).SerializeToString()
        if self._writer is None or self._bytes + len(data) > self.max_bytes and self._bytes > 0:
            if self._writer is not None:
                self._writer.close()
            self._open()
        self._writer.write(data)
        self._bytes += len(data) + 16  # TFRecord framing: length, two CRCs
        self.written += 1
