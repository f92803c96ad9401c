"""TFRecord input (ImportExampleGen) with a schema file (ImportSchemaGen), end to end."""

import csv
import glob

import tensorflow as tf

from keel.data import datasets

from helpers import keel, node_states, penguin_spec


def write_penguin_tfrecords(source_csv, target):
    """Writes the penguins CSV as gzipped tf.Examples; a missing value is an empty list, as CsvExampleGen writes it."""
    ints = {"flipper_length_mm", "body_mass_g", "year"}
    strings = {"species", "island", "sex"}
    with open(source_csv, newline="") as f, tf.io.TFRecordWriter(str(target), options="GZIP") as writer:
        for row in csv.DictReader(f):
            feature = {}
            for name, value in row.items():
                if name in strings:
                    values = [value.encode()] if value else []
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
                elif name in ints:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)] if value else []))
                else:
                    values = [float(value)] if value else []
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_tfrecord_source_with_a_schema_file_trains_and_pushes(tmp_path, penguin_runs):
    record = datasets.materialise("penguins", tmp_path / "csv")
    (tmp_path / "records").mkdir()
    write_penguin_tfrecords(record["file"], tmp_path / "records" / "penguins.tfrecord.gz")
    schema = glob.glob(str(penguin_runs.workdir / "pipeline" / "SchemaGen" / "schema" / "*" / "schema.pbtxt"))[0]
    spec = penguin_spec(tmp_path, {"data.schema": schema}, source="records/*.tfrecord.gz")
    workdir = tmp_path / "work"
    result = keel("run", spec, "--workdir", workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    states = node_states(workdir)
    assert states["ImportExampleGen"] == "COMPLETE" and states["ImportSchemaGen"] == "COMPLETE"
    assert states["Pusher"] == "COMPLETE"
    assert "blessed: yes" in result.stdout
