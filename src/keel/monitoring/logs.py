"""Reads PredictionLog TFRecord files (keel serve's or TF Serving's own) into tf.Example rows.

A request to a signature taking serialized tf.Examples (`examples`, or a Classify / Regress
signature's `inputs`) contributes those examples; a request with named dense inputs contributes one
tf.Example per row, typed as the schema types the feature, with a missing value (NaN, "") as an
empty list, which is how ExampleGen writes a missing CSV field, so serving and training statistics
count missing values the same way. Each row keeps what the model answered: the predicted class
(`classes`, classification) or number (`predictions`, or a Regress signature's `outputs`), for
`keel monitor --labels`.
"""

import dataclasses
import datetime
import math
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import message
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import prediction_log_pb2

from keel.core.errors import KeelError


class LogError(KeelError):
    """The request logs are missing, unreadable or hold nothing to monitor."""


@dataclasses.dataclass
class LoggedRow:
    request_id: str  # the request's id, with "/N" for row N of a request of several rows
    time: float
    version: str
    example: bytes  # a serialized tf.Example
    predicted: str | None  # the predicted class (classification)
    prediction: float | None = None  # the predicted number (regression)


@dataclasses.dataclass
class LoggedPredict:
    request_id: str
    time: float
    model: str
    version: str
    inputs: dict[str, np.ndarray]
    classes: np.ndarray | None
    predictions: np.ndarray | None = None


def parse_since(text: str | None) -> float | None:
    """An ISO 8601 time (UTC unless it says otherwise) as seconds since the epoch."""
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise LogError(f"--since: {text!r} is not an ISO 8601 time (e.g. 2026-12-01T09:30:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _records(path: Path) -> tuple[list[bytes], bool]:
    """The records of one TFRecord file, and whether a truncated last record was left out.

    A server killed mid-write (kill -9, power loss) leaves a torn final record; every record before
    it is intact. Corruption anywhere else is an error.
    """
    records = []
    iterator = iter(tf.data.TFRecordDataset(str(path)))
    while True:
        try:
            records.append(next(iterator).numpy())
        except StopIteration:
            # A tail shorter than a record's length field ends the iteration without an error.
            framed = sum(len(r) + 16 for r in records)  # length, its CRC, data, its CRC
            return records, framed < path.stat().st_size
        except tf.errors.DataLossError as e:
            if "truncated record" in str(e):
                return records, True
            raise LogError(
                f"--logs: {path} is not a TFRecord file of PredictionLog protos "
                f"(corrupted after {len(records)} record(s))"
            ) from None


def read_predict_logs(directory: Path) -> tuple[list[LoggedPredict], list[str]]:
    """Every PredictLog record in the files of `directory`, oldest first, and the files whose torn
    last record (a server stopped mid-write) was skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise LogError(f"--logs: {directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise LogError(f"--logs: {directory} holds no log files")
    found, truncated = [], []
    for path in files:
        predicts, torn = read_file(path)
        found += predicts
        if torn:
            truncated.append(str(path))
    if not found:
        raise LogError(f"--logs: the {len(files)} file(s) in {directory} hold no PredictLog records")
    return sorted(found, key=lambda p: p.time), truncated


def read_file(path: Path) -> tuple[list[LoggedPredict], bool]:
    """The PredictLog records of one log file, in file order, and whether a torn last record was skipped."""
    records, torn = _records(path)
    found = []
    for data in records:
        try:
            record = prediction_log_pb2.PredictionLog.FromString(data)
        except message.DecodeError:
            raise LogError(f"--logs: {path} holds records that are not PredictionLog protos") from None
        if record.WhichOneof("log_type") != "predict_log":
            continue
        request, response = record.predict_log.request, record.predict_log.response
        spec = request.model_spec if request.model_spec.name else record.log_metadata.model_spec
        predictions = response.outputs.get("predictions", response.outputs.get("outputs"))
        found.append(
            LoggedPredict(
                request_id=request.client_id.decode("utf-8", "replace"),
                time=float(record.log_metadata.timestamp_secs),
                model=spec.name,
                version=str(spec.version.value),
                inputs={name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()},
                classes=_predicted(response.outputs),
                predictions=tf.make_ndarray(predictions) if predictions is not None else None,
            )
        )
    return found, torn


def _predicted(outputs) -> np.ndarray | None:
    """The predicted class per row: `classes` [batch], or for a classify signature's `classes` and
    `scores` [batch, classes] the best-scoring class; None when the response has no classes."""
    if "classes" not in outputs:
        return None
    classes = tf.make_ndarray(outputs["classes"])
    if classes.ndim == 2 and "scores" in outputs:
        scores = tf.make_ndarray(outputs["scores"])
        if scores.shape == classes.shape:
            return classes[np.arange(len(classes)), scores.argmax(axis=1)]
    return classes


def to_rows(predict: LoggedPredict, schema: schema_pb2.Schema) -> list[LoggedRow]:
    """One LoggedRow per example in a logged request."""
    serialized = next((k for k in ("examples", "inputs") if set(predict.inputs) == {k}), None)
    if serialized is not None:  # serving_default's `examples`, or a classify / regress signature's `inputs`
        examples = [bytes(e) for e in predict.inputs[serialized].reshape(-1)]
    else:
        types = {f.name: f.type for f in schema.feature}
        columns = {name: values.reshape(len(values), -1) for name, values in predict.inputs.items()}
        count = len(next(iter(columns.values())))
        examples = [_example({n: c[i] for n, c in columns.items()}, types).SerializeToString() for i in range(count)]
    classes = (
        [c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in predict.classes.reshape(-1)]
        if predict.classes is not None
        else [None] * len(examples)
    )
    numbers = (
        [float(v) for v in predict.predictions.reshape(-1)]
        if predict.predictions is not None
        else [None] * len(examples)
    )
    single = len(examples) == 1
    return [
        LoggedRow(
            predict.request_id if single else f"{predict.request_id}/{i}",
            predict.time,
            predict.version,
            example,
            classes[i] if i < len(classes) else None,
            numbers[i] if i < len(numbers) else None,
        )
        for i, example in enumerate(examples)
    ]


def _example(values: dict[str, np.ndarray], types: dict) -> tf.train.Example:
    example = tf.train.Example()
    for name, value in values.items():
        feature = example.features.feature[name]
        kind = types.get(name)
        if value.dtype == object or kind == schema_pb2.BYTES:
            items = [v if isinstance(v, bytes) else str(v).encode() for v in value.tolist()]
            feature.bytes_list.value.extend(v for v in items if v != b"")
        elif kind == schema_pb2.INT or (kind is None and np.issubdtype(value.dtype, np.integer)):
            feature.int64_list.value.extend(int(v) for v in value.tolist() if not math.isnan(v))
        else:
            feature.float_list.value.extend(float(v) for v in value.tolist() if not math.isnan(v))
    return example
