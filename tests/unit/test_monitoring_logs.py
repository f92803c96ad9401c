"""The request-log reader on a logged Classify request: its `inputs` are the examples, its best class the prediction."""

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from keel.monitoring.logs import read_predict_logs, to_rows
from keel.serving.request_log import LoggedRequest, to_prediction_log


def test_a_logged_classify_request_gives_its_examples_and_best_classes(tmp_path):
    examples = []
    for island in (b"Dream", b"Biscoe"):
        example = tf.train.Example()
        example.features.feature["island"].bytes_list.value.append(island)
        examples.append(example.SerializeToString())
    entry = LoggedRequest(
        "id-1",
        1.0,
        "penguin",
        "3",
        "classify",
        {"inputs": np.array(examples, dtype=object)},
        {
            "classes": np.array([[b"Adelie", b"Gentoo"], [b"Adelie", b"Gentoo"]], dtype=object),
            "scores": np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32),
        },
    )
    with tf.io.TFRecordWriter(str(tmp_path / "prediction_log-1.tfrecord")) as writer:
        writer.write(to_prediction_log(entry).SerializeToString())
    (logged,), truncated = read_predict_logs(tmp_path)
    rows = to_rows(logged, schema_pb2.Schema())
    assert truncated == []
    assert [(r.request_id, r.example, r.predicted) for r in rows] == [
        ("id-1/0", examples[0], "Adelie"),
        ("id-1/1", examples[1], "Gentoo"),
    ]
