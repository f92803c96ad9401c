"""create_pipeline(spec, source, placement) -> tfx Pipeline: the one place keel's DAG is wired.

ExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator -> DataGate ->
Transform -> Trainer -> Evaluator (vs a blessed baseline) -> Pusher [-> LiteExporter, with [export.lite]].

The factory is pure: where the pipeline runs (roots, ML Metadata, the Trainer's executor, the
baseline strategy, Beam options) is the runner's choice, handed in as a `Placement`
(keel.runners.local, keel.runners.cloud). Every component has an explicit id from keel.pipeline.nodes.

Each component gets only the configuration it depends on (keel.pipeline.config), so TFX's cache
re-runs exactly the components a spec change affects: a new `train.steps` re-runs Trainer, Evaluator
and Pusher; the Transform's config includes the model module only if it defines preprocessing_fn.
"""

import dataclasses
import json
import sys
from collections.abc import Mapping
from typing import Any

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from keel.core.fingerprint import path_sha256
from keel.core.spec import Spec
from keel.core.tasks import POSITIVE_CLASS_INDEX
from keel.data.features import LABEL_WEIGHT
from keel.data.sources import DataSource
from keel.executors import example_gen
from keel.executors.signatures import OUTPUT_PREDICTIONS, OUTPUT_PROBABILITIES
from keel.pipeline import config, nodes
from keel.pipeline.components.baseline import CANDIDATE, LatestBlessedBeforeCandidate
from keel.pipeline.components.data_gate import DataGate
from keel.pipeline.components.lite_exporter import LiteExporter

PREPROCESSING_FN = "keel.executors.transform.preprocessing_fn"
RUN_FN = "keel.executors.trainer.run_fn"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where and how one pipeline runs: what a runner decides and the factory takes as given.

    `metadata` is None where the orchestrator provides ML Metadata itself (Vertex, Kubeflow).
    `module` is the model module's path as the executors see it. `trainer` and `trainer_extra` are
    the Trainer component class and the custom_config keys its executor reads besides keel's own
    (a Vertex AI job's machine). `baseline` is the resolver strategy that picks the Evaluator's
    baseline; keel's LatestBlessedBeforeCandidate is anchored to the candidate model. `workdir` is set for
    local runs: DataGate reads from its ML Metadata the schema the newest pushed model was trained on
    (keel.pipeline.components.schema_drift). A constant, so identical re-runs stay cached; None on
    Vertex and Kubeflow, whose ML Metadata is the orchestrator's.
    """

    pipeline_root: str
    serving_root: str
    metadata: metadata_store_pb2.ConnectionConfig | None
    module: str
    beam_args: tuple[str, ...]
    trainer: type = tfx.components.Trainer
    trainer_extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    baseline: type = LatestBlessedBeforeCandidate
    workdir: str | None = None  # a local run's workdir, whose ML Metadata executors may read


def _example_gen(spec: Spec, source: DataSource, workdir: str | None):
    eval_buckets = spec.data.eval_percent
    output = tfx.proto.Output(
        split_config=tfx.proto.SplitConfig(
            splits=[
                tfx.proto.SplitConfig.Split(name="train", hash_buckets=100 - eval_buckets),
                tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
            ]
        )
    )
    inputs = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all", pattern=source.pattern)])
    factory = tfx.components.CsvExampleGen if source.kind == "csv" else tfx.components.ImportExampleGen
    span = None  # without a RangeConfig, ExampleGen reads the latest span of a {SPAN} pattern
    if source.span is not None:  # exactly the span keel resolved and recorded (data.select_span)
        span = tfx.proto.RangeConfig(
            static_range=tfx.proto.StaticRange(start_span_number=source.span, end_span_number=source.span)
        )
    node_id = nodes.EXAMPLE_GEN_CSV if source.kind == "csv" else nodes.EXAMPLE_GEN_IMPORT
    extra = {}
    if source.kind == "csv" and workdir:  # integers written as floats where the blessed model read floats
        factory = FileBasedExampleGen  # CsvExampleGen with keel's executor: CsvExampleGen takes no executor
        extra = {
            "custom_config": example_gen.custom_config(workdir),
            "custom_executor_spec": executor_spec.BeamExecutorSpec(example_gen.Executor),
        }
    return factory(
        input_base=str(source.input_base), input_config=inputs, output_config=output, range_config=span, **extra
    ).with_id(node_id)


def _eval_config(spec: Spec, user_preprocessing: bool) -> tfma.EvalConfig:
    """TFMA's config: the task's metric, its bar and its no-regression check against the baseline.

    A binary metric scores the second class of the label vocabulary (TFMA's binarization by class id).
    """
    metric = spec.metric
    # Without a value bound and before any baseline TFX would not validate at all, so write no blessing:
    # an unset threshold is the weakest bound the metric has (an accuracy >= 0, an error <= the largest float).
    if metric.higher_is_better:
        direction, change = tfma.MetricDirection.HIGHER_IS_BETTER, -spec.eval.max_regression
        bound = 0.0 if spec.eval.threshold is None else spec.eval.threshold
        value = tfma.GenericValueThreshold(lower_bound={"value": bound})
    else:
        direction, change = tfma.MetricDirection.LOWER_IS_BETTER, spec.eval.max_regression
        bound = sys.float_info.max if spec.eval.threshold is None else spec.eval.threshold
        value = tfma.GenericValueThreshold(upper_bound={"value": bound})
    threshold = tfma.MetricThreshold(
        value_threshold=value,
        change_threshold=tfma.GenericChangeThreshold(direction=direction, absolute={"value": change}),
    )
    judged = tfma.MetricsSpec(
        metrics=[
            tfma.MetricConfig(
                class_name=metric.tfma_class, config=json.dumps({"name": metric.name}), threshold=threshold
            )
        ]
    )
    if metric.labels == "binary":
        judged.binarize.class_ids.values.append(POSITIVE_CLASS_INDEX)
    regression = spec.task.task == "regression"
    count = tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount")])
    model = tfma.ModelSpec(
        signature_name="serving_default",
        label_key=spec.data.label,
        prediction_key=OUTPUT_PREDICTIONS if regression else OUTPUT_PROBABILITIES,
        preprocessing_function_names=["transform_features"],
    )
    if regression and not user_preprocessing:
        # keel's transform weighs a row without a label 0, so it counts in no metric (TFMA would get NaN).
        model.example_weight_key = LABEL_WEIGHT
        for metrics in (count, judged):
            metrics.example_weights.weighted = True
    return tfma.EvalConfig(model_specs=[model], slicing_specs=[tfma.SlicingSpec()], metrics_specs=[count, judged])


def _warm_start(spec: Spec):
    """An Importer for the borrowed weights, so ML Metadata records them (uri and sha256) as a Model artifact."""
    if not spec.model.warm_start:
        return None
    path = spec.resolve(spec.model.warm_start)
    return tfx.dsl.Importer(
        source_uri=str(path),
        artifact_type=tfx.types.standard_artifacts.Model,
        custom_properties={"sha256": path_sha256(path)},
    ).with_id(nodes.WARM_START)


def _lite_exporter(settings: config.LiteExportConfig | None, examples, trainer, evaluator, pusher):
    """The parity-gated LiteRT export after the Pusher, when the spec has [export.lite]."""
    if settings is None:
        return None
    return LiteExporter(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        pushed_model=pusher.outputs["pushed_model"],
        examples=examples,
        config=json.dumps(config.encode(settings), sort_keys=True),
    ).with_id(nodes.LITE_EXPORTER)


def create_pipeline(spec: Spec, source: DataSource, placement: Placement) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline for `spec` reading `source`, placed where `placement` says."""
    code = config.model_code(spec, placement.module)

    example_gen = _example_gen(spec, source, placement.workdir)
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(nodes.STATISTICS)
    if spec.data.schema_file:
        schema = tfx.components.ImportSchemaGen(schema_file=str(spec.resolve(spec.data.schema_file))).with_id(
            nodes.SCHEMA_IMPORT
        )
    else:
        schema = tfx.components.SchemaGen(
            statistics=statistics.outputs["statistics"], infer_feature_shape=True
        ).with_id(nodes.SCHEMA)
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    ).with_id(nodes.VALIDATOR)
    gate = DataGate(
        examples=example_gen.outputs["examples"],
        statistics=statistics.outputs["statistics"],
        schema=schema.outputs["schema"],
        anomalies=validator.outputs["anomalies"],
        config=json.dumps(config.encode(config.gate_config(spec, placement.workdir)), sort_keys=True),
    ).with_id(nodes.DATA_GATE)

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=config.encode(config.transform_config(spec, code)),
    ).with_id(nodes.TRANSFORM)
    transform.add_upstream_node(gate)

    warm_start = _warm_start(spec)
    trainer = placement.trainer(
        run_fn=RUN_FN,
        base_model=warm_start.outputs["result"] if warm_start else None,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=spec.train.steps),
        eval_args=tfx.proto.EvalArgs(num_steps=spec.train.eval_steps),
        custom_config={**config.encode(config.trainer_config(spec, code)), **placement.trainer_extra},
    ).with_id(nodes.TRAINER)
    anchor = {CANDIDATE: trainer.outputs["model"]} if placement.baseline is LatestBlessedBeforeCandidate else {}
    baseline = tfx.dsl.Resolver(
        strategy_class=placement.baseline,
        **anchor,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(nodes.BASELINE)
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        example_splits=["eval"],
        eval_config=_eval_config(spec, code.user_preprocessing),
    ).with_id(nodes.EVALUATOR)
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=placement.serving_root)
        ),
    ).with_id(nodes.PUSHER)
    lite_exporter = _lite_exporter(
        config.lite_export_config(spec), example_gen.outputs["examples"], trainer, evaluator, pusher
    )

    return tfx.dsl.Pipeline(
        pipeline_name=spec.pipeline.name,
        pipeline_root=placement.pipeline_root,
        components=[
            example_gen,
            statistics,
            schema,
            validator,
            gate,
            transform,
            *filter(None, [warm_start]),
            trainer,
            baseline,
            evaluator,
            pusher,
            *filter(None, [lite_exporter]),
        ],
        enable_cache=True,
        metadata_connection_config=placement.metadata,
        beam_pipeline_args=list(placement.beam_args),
    )
