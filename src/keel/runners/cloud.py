"""Compiles a spec's pipeline for Vertex AI Pipelines or Kubeflow Pipelines (v2 IR), offline.

The same DAG as a local run (keel.pipeline.factory.create_pipeline) with cloud paths: artifacts and pushed
models under `[cloud] pipeline_root`, data from `[cloud] data` (or a gs:// `data.source`), every
component in `[cloud] image`, Beam options from `[beam]` (Dataflow for data that outgrows one
machine), and for Vertex the Trainer as a Vertex AI custom training job on `[cloud.trainer]`'s
machine, TPU or GPUs, in `[cloud.trainer] image` where set (a JAX trainer on a TPU needs one with jax[tpu]).
"""

from pathlib import Path

from keel.core.errors import SpecError
from keel.core.spec import Spec
from keel.executors.training.cluster import check_workers

TARGETS = ("vertex", "kubeflow")


def trainer_image(spec: Spec) -> str:
    """The image the Vertex Trainer job runs: `[cloud.trainer] image`, else the pipeline's `[cloud] image`."""
    return spec.cloud.trainer.image or spec.cloud.image


def _vertex_trainer(spec: Spec):
    """The Vertex AI Trainer component class and the custom_config keys that place it on its machine."""
    from tfx import v1 as tfx
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY

    trainer = spec.cloud.trainer
    machine = {"machine_type": trainer.machine_type}
    if trainer.accelerator_type:
        machine["accelerator_type"] = trainer.accelerator_type
        machine["accelerator_count"] = trainer.accelerator_count or 1
    if trainer.tpu_topology:
        machine["tpu_topology"] = trainer.tpu_topology
    pool = {"machine_spec": machine, "container_spec": {"image_uri": trainer_image(spec)}}
    pools = [{**pool, "replica_count": 1}]  # pool 0: the chief
    if spec.train.workers > 1:  # pool 1: the other workers; Vertex gives every replica its TF_CONFIG
        pools.append({**pool, "replica_count": spec.train.workers - 1})
    training_args = {"project": spec.cloud.project, "worker_pool_specs": pools}
    return tfx.extensions.google_cloud_ai_platform.Trainer, {
        constants.ENABLE_VERTEX_KEY: True,
        constants.VERTEX_REGION_KEY: spec.cloud.region,
        TRAINING_ARGS_KEY: training_args,
    }


def _cloud_source(spec: Spec):
    from keel.data.sources import DataSource, _kind_of

    name = spec.path.name
    location = spec.cloud.data or (spec.data.source if spec.data.source.startswith("gs://") else None)
    if location is None:
        raise SpecError(
            f"{name}: cloud.data: required to compile {spec.data.source!r} for the cloud; "
            "expected the gs:// folder or file pattern the data was copied to"
        )
    if location.endswith("/"):
        kind = "tfrecord" if spec.data.source.lower().endswith((".tfrecord", ".gz")) else "csv"
        return DataSource(kind, location.rstrip("/"), "*", [])
    base, _, pattern = location.rpartition("/")
    return DataSource(_kind_of(pattern), base, pattern, [])


def check_cloud_spec(spec: Spec, target: str) -> None:
    """Raises SpecError (one line per problem) when `[cloud]` lacks what compiling for `target` needs."""
    if target not in TARGETS:
        raise SpecError(f"--target: got {target!r}; expected one of: {', '.join(TARGETS)}")
    name = spec.path.name
    needed = ["pipeline_root", "image", "module"] + (["project"] if target == "vertex" else [])
    missing = [key for key in needed if not getattr(spec.cloud, key)]
    if missing == needed:  # no [cloud] section at all: one problem, not one per key
        raise SpecError(
            f"{name}: [cloud]: required to compile for {target}, with {', '.join(needed)} "
            "(see the README's Vertex AI section)"
        )
    problems = [f"{name}: cloud.{key}: required to compile for {target}" for key in missing]
    try:
        check_workers(spec.train.workers, spec.train.backend, spec.train.accelerator)
    except SpecError as e:
        problems.append(f"{name}: {e}")
    if target == "kubeflow" and spec.train.workers > 1:
        problems.append(
            f"{name}: train.workers = {spec.train.workers}: Kubeflow's Trainer runs in one pod; "
            "several training processes need --target vertex (a Vertex AI worker pool) or a local run"
        )
    trainer = spec.cloud.trainer
    if trainer.accelerator_count and not trainer.accelerator_type:
        problems.append(f"{name}: cloud.trainer.accelerator_count: set, but cloud.trainer.accelerator_type is not")
    if target == "vertex" and spec.train.backend != "tensorflow" and trainer.on_tpu() and not trainer.image:
        # The TFX image has TensorFlow's CPU build and no libtpu: JAX there would train on the TPU VM's CPU.
        problems.append(
            f"{name}: cloud.trainer.image: required for backend = {spec.train.backend!r} on a TPU trainer "
            f"({trainer.machine_type}): an image with jax[tpu] of the lock's JAX version (see docs/cloud.md)"
        )
    if problems:
        raise SpecError("\n".join(problems))


def cloud_placement(spec: Spec, target: str):
    """Where a cloud run puts things: artifacts and pushes under `[cloud] pipeline_root`, ML Metadata
    the orchestrator's, the model module at `[cloud] module` in the image, and (vertex) the Trainer as
    a Vertex AI job. Kubeflow and Vertex compile only TFX's own resolver strategies; there the data
    changes between runs anyway, so the baseline is the latest blessed model."""
    from tfx import v1 as tfx

    from keel.pipeline.factory import Placement
    from keel.runners.beam import beam_pipeline_args

    root = f"{spec.cloud.pipeline_root.rstrip('/')}/{spec.pipeline.name}"
    trainer, extra = _vertex_trainer(spec) if target == "vertex" else (tfx.components.Trainer, {})
    return Placement(
        pipeline_root=root,
        serving_root=f"{root}/serving",
        metadata=None,
        module=spec.cloud.module,
        beam_args=tuple(beam_pipeline_args(spec)),
        trainer=trainer,
        trainer_extra=extra,
        baseline=tfx.dsl.experimental.LatestBlessedModelStrategy,
    )


def compile_pipeline(spec: Spec, target: str, output: Path) -> Path:
    """Writes the pipeline's Kubeflow v2 IR (what Vertex AI and Kubeflow Pipelines run) to `output`."""
    check_cloud_spec(spec, target)
    source = _cloud_source(spec)
    from tfx import v1 as tfx

    from keel.pipeline.factory import create_pipeline

    pipeline = create_pipeline(spec, source, cloud_placement(spec, target))
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=spec.cloud.image),
        output_dir=str(output.parent),
        output_filename=output.name,
    )
    runner.run(pipeline, write_out=True)
    return output
