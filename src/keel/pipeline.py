"""create_pipeline(spec, ...) -> tfx Pipeline: the one place keel's DAG is wired.

ExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator -> DataGate ->
Transform -> Trainer -> Evaluator (vs the latest model blessed before this one) -> Pusher.

Each component gets only the configuration it depends on, so TFX's cache re-runs exactly the
components a spec change affects: a new `train.steps` re-runs Trainer, Evaluator and Pusher.
"""

import json
from pathlib import Path

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from keel.components.baseline import LatestBlessedBeforeCandidate
from keel.components.data_gate import DataGate
from keel.data import DataSource
from keel.modules import load_module, module_sha256
from keel.spec import TFMA_METRIC_CLASS, Spec
from keel.signatures import OUTPUT_PROBABILITIES

PREPROCESSING_FN = "keel.transform.preprocessing_fn"
RUN_FN = "keel.trainer.run_fn"


def _example_gen(spec: Spec, source: DataSource):
    eval_buckets = spec.data.eval_percent
    output = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=100 - eval_buckets),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
    ]))
    inputs = tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all", pattern=source.pattern)])
    factory = tfx.components.CsvExampleGen if source.kind == "csv" else tfx.components.ImportExampleGen
    return factory(input_base=str(source.input_base), input_config=inputs, output_config=output)


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


def model_code_config(spec: Spec) -> dict:
    """What the Transform and Trainer know of the user's module: path, content hash, hooks."""
    path = spec.resolve(spec.model.module)
    return {"module": str(path), "module_sha256": module_sha256(path),
            "user_preprocessing": callable(getattr(load_module(path), "preprocessing_fn", None))}


def create_pipeline(spec: Spec, source: DataSource, workdir: Path, beam_args: list[str] | None = None):
    """Builds the TFX pipeline for `spec` reading `source`, with its root and ML Metadata under `workdir`."""
    name = spec.pipeline.name
    code = model_code_config(spec)
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
    gate = DataGate(examples=example_gen.outputs["examples"], schema=schema.outputs["schema"],
                    anomalies=validator.outputs["anomalies"], config=json.dumps(features, sort_keys=True))

    # Only what the transform depends on: the model module matters only if it defines preprocessing_fn.
    transform_config = dict(features)
    if code["user_preprocessing"]:
        transform_config.update(code)
    transform = tfx.components.Transform(examples=example_gen.outputs["examples"], schema=schema.outputs["schema"],
                                         preprocessing_fn=PREPROCESSING_FN, custom_config=transform_config)
    transform.add_upstream_node(gate)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=spec.train.steps),
        eval_args=tfx.proto.EvalArgs(num_steps=spec.train.eval_steps),
        custom_config={**features, **code, "hparams": spec.model.hparams, "batch_size": spec.train.batch_size,
                       "seed": spec.train.seed,
                       "metric": spec.eval.metric},
    )
    baseline = tfx.dsl.Resolver(
        strategy_class=LatestBlessedBeforeCandidate,
        candidate=trainer.outputs["model"],
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("baseline")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"], example_splits=["eval"], eval_config=_eval_config(spec))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=str(workdir / "serving" / name))))

    return tfx.dsl.Pipeline(
        pipeline_name=name,
        pipeline_root=str(workdir / "pipeline"),
        components=[example_gen, statistics, schema, validator, gate, transform, trainer, baseline, evaluator,
                    pusher],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(workdir / "metadata.sqlite")),
        beam_pipeline_args=beam_args or ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )
