"""create_pipeline(spec, ...) -> tfx Pipeline: the one place keel's DAG is wired.

ExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator -> DataGate ->
Transform -> Trainer -> Evaluator (vs the latest model blessed before this one) -> Pusher
[-> LiteExporter, with [export.lite]].

Each component gets only the configuration it depends on, so TFX's cache re-runs exactly the
components a spec change affects: a new `train.steps` re-runs Trainer, Evaluator and Pusher.
"""

import json
from pathlib import Path

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from keel.pipeline.components.baseline import LatestBlessedBeforeCandidate
from keel.pipeline.components.data_gate import DataGate
from keel.pipeline.components.lite_exporter import LiteExporter
from keel.data.sources import DataSource
from keel.core.modules import load_module, module_sha256
from keel.runners.beam import beam_pipeline_args
from keel.runners.cloud import vertex_trainer
from keel.core.spec import TFMA_METRIC_CLASS, Spec
from keel.executors.signatures import OUTPUT_PROBABILITIES
from keel.core.fingerprint import path_sha256

PREPROCESSING_FN = "keel.executors.transform.preprocessing_fn"
RUN_FN = "keel.executors.trainer.run_fn"
WARM_START = "warm_start"


def _example_gen(spec: Spec, source: DataSource):
    eval_buckets = spec.data.eval_percent
    output = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=100 - eval_buckets),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
    ]))
    inputs = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all", pattern=source.pattern)])
    factory = tfx.components.CsvExampleGen if source.kind == "csv" else tfx.components.ImportExampleGen
    span = None  # without a RangeConfig, ExampleGen reads the latest span of a {SPAN} pattern
    if source.span is not None:  # exactly the span keel resolved and recorded (data.select_span)
        span = tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=source.span, end_span_number=source.span))
    return factory(input_base=str(source.input_base), input_config=inputs, output_config=output, range_config=span)


def _eval_config(spec: Spec) -> tfma.EvalConfig:
    metric = TFMA_METRIC_CLASS[spec.eval.metric]
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": spec.eval.threshold}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -spec.eval.max_regression}),
    )
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=spec.data.label,
                                    prediction_key=OUTPUT_PROBABILITIES,
                                    preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name=metric, config=json.dumps({"name": spec.eval.metric}),
                              threshold=threshold),
        ])],
    )


def _warm_start(spec: Spec):
    """An Importer for the borrowed weights, so ML Metadata records them (uri and sha256) as a Model artifact."""
    if not spec.model.warm_start:
        return None
    path = spec.resolve(spec.model.warm_start)
    return tfx.dsl.Importer(source_uri=str(path), artifact_type=tfx.types.standard_artifacts.Model,
                            custom_properties={"sha256": path_sha256(path)}).with_id(WARM_START)


def _lite_exporter(spec: Spec, examples, trainer, evaluator, pusher):
    """The parity-gated LiteRT export after the Pusher, when the spec has [export.lite]."""
    lite = spec.export.lite
    if lite is None:
        return None
    config = {"label": spec.data.label, "policy": lite.model_dump(mode="json")}
    return LiteExporter(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                        pushed_model=pusher.outputs["pushed_model"], examples=examples,
                        config=json.dumps(config, sort_keys=True))


def model_code_config(spec: Spec) -> dict:
    """What the Transform and Trainer know of the user's module: path, content hash, hooks."""
    path = spec.resolve(spec.model.module)
    return {"module": str(path), "module_sha256": module_sha256(path),
            "user_preprocessing": callable(getattr(load_module(path), "preprocessing_fn", None))}


def create_pipeline(spec: Spec, source: DataSource, workdir: Path | None, beam_args: list[str] | None = None,
                    target: str = "local"):
    """Builds the TFX pipeline for `spec` reading `source`.

    target "local": root, ML Metadata and pushed models under `workdir`. "vertex" / "kubeflow": root and
    pushes under `[cloud] pipeline_root`, the model module at `[cloud] module` inside the image, and (vertex)
    the Trainer as a Vertex AI custom job on `[cloud.trainer]`'s machine (see keel.runners.cloud).
    """
    name = spec.pipeline.name
    local = target == "local"
    code = model_code_config(spec)
    if not local:
        code["module"] = spec.cloud.module
    root = str(workdir / "pipeline") if local else f"{spec.cloud.pipeline_root.rstrip('/')}/{name}"
    serving_root = str(workdir / "serving" / name) if local else f"{root}/serving"
    features = {"label": spec.data.label, "numeric": list(spec.features.numeric),
                "categorical": list(spec.features.categorical)}

    example_gen = _example_gen(spec, source)
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    if spec.data.schema_file:
        schema = tfx.components.ImportSchemaGen(schema_file=str(spec.resolve(spec.data.schema_file)))
    else:
        schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"], infer_feature_shape=True)
    validator = tfx.components.ExampleValidator(statistics=statistics.outputs["statistics"],
                                                schema=schema.outputs["schema"])
    gate = DataGate(examples=example_gen.outputs["examples"], statistics=statistics.outputs["statistics"],
                    schema=schema.outputs["schema"], anomalies=validator.outputs["anomalies"],
                    config=json.dumps(features, sort_keys=True))

    # Only what the transform depends on: the model module matters only if it defines preprocessing_fn.
    transform_config = dict(features)
    if code["user_preprocessing"]:
        transform_config.update(code)
    transform = tfx.components.Transform(examples=example_gen.outputs["examples"], schema=schema.outputs["schema"],
                                         preprocessing_fn=PREPROCESSING_FN, custom_config=transform_config)
    transform.add_upstream_node(gate)

    warm_start = _warm_start(spec)
    trainer_class, cloud_config = (tfx.components.Trainer, {}) if target != "vertex" else vertex_trainer(spec)
    trainer = trainer_class(
        run_fn=RUN_FN,
        base_model=warm_start.outputs["result"] if warm_start else None,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=spec.train.steps),
        eval_args=tfx.proto.EvalArgs(num_steps=spec.train.eval_steps),
        custom_config={**features, **code, "hparams": spec.model.hparams, "batch_size": spec.train.batch_size,
                       "seed": spec.train.seed, "jit_compile": spec.train.jit_compile,
                       "accelerator": spec.train.accelerator, "tpu": spec.train.tpu,
                       "precision": spec.train.precision,
                       "metric": spec.eval.metric, **cloud_config},
    )
    # Kubeflow / Vertex compile only TFX's own strategies; there data changes between runs anyway.
    anchor = {"strategy_class": LatestBlessedBeforeCandidate, "candidate": trainer.outputs["model"]} if local else {
        "strategy_class": tfx.dsl.experimental.LatestBlessedModelStrategy}
    baseline = tfx.dsl.Resolver(
        **anchor,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("baseline")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"], example_splits=["eval"], eval_config=_eval_config(spec))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=serving_root)))
    lite_exporter = _lite_exporter(spec, example_gen.outputs["examples"], trainer, evaluator, pusher)

    return tfx.dsl.Pipeline(
        pipeline_name=name,
        pipeline_root=root,
        components=[example_gen, statistics, schema, validator, gate, transform, *filter(None, [warm_start]),
                    trainer, baseline, evaluator, pusher, *filter(None, [lite_exporter])],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(workdir / "metadata.sqlite")) if local else None,
        beam_pipeline_args=beam_args if beam_args is not None else beam_pipeline_args(spec),
    )
