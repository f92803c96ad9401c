"""The penguin pipeline written directly against TFX 1.16, as the baseline for bench/pipeline.py.

The same components, data, preprocessing and model that keel builds from pipelines/penguin.toml
(keel's DataGate aside, which has no TFX counterpart), with the user code passed the usual TFX
way, `module_file=`, so TFX packages it as a wheel and installs it for Transform and Trainer.

    .venv/bin/python bench/raw_tfx/penguin_pipeline.py --data DIR_WITH_CSV --root WORKDIR [--learning-rate X]
"""

import argparse
import os

import tensorflow_model_analysis as tfma
from absl import logging
from tfx import v1 as tfx

MODULE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "penguin_module", "penguin_utils.py")

# As in pipelines/penguin.toml (bench/pipeline.py checks that they still agree).
STEPS = 300
EVAL_STEPS = 50
BATCH_SIZE = 32
HIDDEN = [32, 16]
LEARNING_RATE = 0.01
SEED = 42
EVAL_PERCENT = 20
THRESHOLD = 0.9
MAX_REGRESSION = 0.02


def create_pipeline(data_root: str, root: str, learning_rate: float) -> tfx.dsl.Pipeline:
    example_gen = tfx.components.CsvExampleGen(
        input_base=data_root,
        output_config=tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[
                    tfx.proto.SplitConfig.Split(name="train", hash_buckets=100 - EVAL_PERCENT),
                    tfx.proto.SplitConfig.Split(name="eval", hash_buckets=EVAL_PERCENT),
                ]
            )
        ),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"], module_file=MODULE_FILE
    )
    trainer = tfx.components.Trainer(
        module_file=MODULE_FILE,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=STEPS),
        eval_args=tfx.proto.EvalArgs(num_steps=EVAL_STEPS),
        custom_config={"hidden": HIDDEN, "learning_rate": learning_rate, "batch_size": BATCH_SIZE, "seed": SEED},
    )
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    eval_config = tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key="species",
                prediction_key="probabilities",
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": THRESHOLD}),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -MAX_REGRESSION}
                            ),
                        ),
                    ),
                ]
            )
        ],
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        example_splits=["eval"],
        eval_config=eval_config,
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=os.path.join(root, "serving", "penguin"))
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name="penguin",
        pipeline_root=os.path.join(root, "pipeline"),
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            transform,
            trainer,
            model_resolver,
            evaluator,
            pusher,
        ],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite")
        ),
        # Beam's DirectRunner defaults, spelled out as keel's local runner does.
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="directory holding the penguin CSV")
    parser.add_argument("--root", required=True, help="pipeline root and ML Metadata")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    args = parser.parse_args()
    logging.set_verbosity(logging.INFO)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(args.data, args.root, args.learning_rate))
