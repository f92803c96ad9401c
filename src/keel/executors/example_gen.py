"""CsvExampleGen's executor, writing integers as floats where the blessed model was trained on floats.

CSV has no types: CsvExampleGen infers them, so a float column written without decimals (pandas
writes `3` for `3.0` when a column has no gaps) arrives as integers. The blessed model parses that
column as floats when the Evaluator compares against it and when it serves, so such a span would
fail inside the Evaluator. This executor is TFX's CSV executor with one step after it: every column
the newest pushed model's schema types FLOAT (keel.mlmd.training_data.blessed_schema, read from the
workdir's ML Metadata when the run starts) is written as floats. The conversion is exact for
integers up to 2^24, like any float32 value. The columns it converted are recorded on the Examples
artifact (`keel_as_floats`), and DataGate says so in the run's output. Without a workdir (a
Vertex AI or Kubeflow run) or a pushed model, it is TFX's executor unchanged.
"""

import shutil
import tempfile
from pathlib import Path

import apache_beam as beam
import tensorflow as tf
from google.protobuf import struct_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import io_utils, proto_utils

AS_FLOATS_PROPERTY = "keel_as_floats"  # on the Examples artifact: the columns written as floats, comma-separated


def custom_config(workdir: str) -> example_gen_pb2.CustomConfig:
    """ExampleGen's custom_config naming the local run's workdir (whose ML Metadata holds the blessed model)."""
    values = struct_pb2.Struct()
    values.update({"workdir": workdir})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(values)
    return config


def _workdir(exec_properties: dict) -> str | None:
    text = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not text:
        return None
    config = proto_utils.json_to_proto(text, example_gen_pb2.CustomConfig())
    values = struct_pb2.Struct()
    if not config.custom_config.Unpack(values):
        return None
    return values.fields["workdir"].string_value or None


def float_columns(workdir: str | None) -> list[str]:
    """The columns the blessed model's schema types FLOAT; empty without a workdir or a pushed model."""
    from keel.mlmd.training_data import blessed_schema  # ML Metadata: only when a workdir is named

    blessed = blessed_schema(Path(workdir)) if workdir else None
    if not blessed:
        return []
    schema = io_utils.SchemaReader().read(blessed[1])
    return sorted(f.name for f in schema.feature if f.type == schema_pb2.FLOAT)


class _WriteAsFloats(beam.DoFn):
    """Rewrites the int64 values of `columns` as floats; names each converted column on the side output."""

    CONVERTED = "converted"

    def __init__(self, columns: list[str]):
        self._columns = columns

    def process(self, example: tf.train.Example):
        features = example.features.feature
        found = [c for c in self._columns if c in features and features[c].HasField("int64_list")]
        if not found:
            yield example
            return
        converted = tf.train.Example()
        converted.CopyFrom(example)
        for column in found:
            feature = converted.features.feature[column]
            values = list(feature.int64_list.value)
            feature.ClearField("int64_list")
            feature.float_list.value.extend(float(v) for v in values)
            yield beam.pvalue.TaggedOutput(self.CONVERTED, column)
        yield converted


class _CsvAsFloats(beam.PTransform):
    """TFX's CSV-to-Example transform, then `columns` as floats; the converted names go to `found_prefix`."""

    def __init__(self, exec_properties: dict, split_pattern: str, columns: list[str], found_prefix: str):
        super().__init__()
        self._read = csv_executor.Executor().GetInputSourceToExamplePTransform()(exec_properties, split_pattern)
        self._columns, self._found_prefix = columns, found_prefix

    def expand(self, pipeline):
        examples = pipeline | "CsvToExample" >> self._read
        outputs = examples | "AsFloats" >> beam.ParDo(_WriteAsFloats(self._columns)).with_outputs(
            _WriteAsFloats.CONVERTED, main="examples"
        )
        _ = (
            outputs[_WriteAsFloats.CONVERTED]
            | "Distinct" >> beam.Distinct()
            | "Record" >> beam.io.WriteToText(self._found_prefix)
        )
        return outputs["examples"]


class Executor(csv_executor.Executor):
    """TFX's CsvExampleGen executor, with the blessed model's float columns written as floats."""

    def Do(self, input_dict, output_dict, exec_properties):
        self._columns = float_columns(_workdir(exec_properties))
        scratch = tempfile.mkdtemp(prefix="keel-as-floats-")
        self._found_prefix = str(Path(scratch) / "converted")
        try:
            super().Do(input_dict, output_dict, exec_properties)
            found = set()
            for path in Path(scratch).glob("converted*"):
                found.update(line for line in path.read_text().splitlines() if line)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for artifact in output_dict[standard_component_specs.EXAMPLES_KEY]:
            artifact.set_string_custom_property(AS_FLOATS_PROPERTY, ",".join(sorted(found)))

    def GetInputSourceToExamplePTransform(self):
        if not getattr(self, "_columns", None):
            return super().GetInputSourceToExamplePTransform()
        columns, found_prefix = self._columns, self._found_prefix
        return lambda exec_properties, split_pattern: _CsvAsFloats(
            exec_properties, split_pattern, columns, found_prefix
        )


def converted_columns(examples_artifact) -> list[str]:
    """The columns an Examples artifact's ExampleGen wrote as floats (none for other executors)."""
    if not examples_artifact.has_custom_property(AS_FLOATS_PROPERTY):
        return []
    return [c for c in examples_artifact.get_string_custom_property(AS_FLOATS_PROPERTY).split(",") if c]
