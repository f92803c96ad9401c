"""`keel compile`: the local DAG as Kubeflow v2 IR for Vertex AI (TPU trainer, Dataflow) or Kubeflow."""

import json

import pytest

from keel.core.errors import SpecError
from keel.core.spec import load_spec
from keel.runners.cloud import compile_pipeline

from helpers import REPO, keel, write_spec

LOCAL_NODES = {
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
    "Trainer",
    "Evaluator",
    "Pusher",
}
CLOUD = {
    "beam": {"runner": "DataflowRunner", "args": ["--max_num_workers=8"]},
    "cloud": {
        "project": "my-project",
        "pipeline_root": "gs://my-bucket/keel",
        "image": "us-docker.pkg.dev/my-project/keel/keel:1.16",
        "data": "gs://my-bucket/data/taxi/",
        "module": "/pipeline/models/tabular.py",
        "trainer": {"machine_type": "ct5lp-hightpu-4t", "tpu_topology": "2x2"},
    },
}


def taxi_spec(tmp_path, cloud: dict = CLOUD):
    """pipelines/taxi.toml with the given [beam]/[cloud] tables, written to TMP_PATH/taxi.toml and loaded."""
    path = write_spec(tmp_path / "taxi.toml", REPO / "pipelines" / "taxi.toml", cloud)
    return load_spec(path, check_files=False)


@pytest.fixture(scope="module")
def vertex_ir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vertex")
    output = compile_pipeline(taxi_spec(directory), "vertex", directory / "pipeline.json")
    return json.loads(output.read_text())["pipelineSpec"]


def test_every_local_component_is_in_the_vertex_pipeline(vertex_ir):
    tasks = vertex_ir["root"]["dag"]["tasks"]
    assert LOCAL_NODES <= set(tasks)
    assert "DataGate" in tasks["Transform"]["dependentTasks"]  # bad data still stops the run before Transform


def test_the_trainer_is_a_vertex_job_on_a_tpu(vertex_ir):
    executor = vertex_ir["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor" in executor["args"]
    config = json.loads(
        vertex_ir["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"][
            "constantValue"
        ]["stringValue"]
    )
    pool = config["ai_platform_training_args"]["worker_pool_specs"][0]
    assert pool["machine_spec"] == {"machine_type": "ct5lp-hightpu-4t", "tpu_topology": "2x2"}
    assert pool["container_spec"]["image_uri"] == "us-docker.pkg.dev/my-project/keel/keel:1.16"
    assert config["ai_platform_enable_vertex"] is True and config["module"] == "/pipeline/models/tabular.py"


def test_data_components_run_on_dataflow(vertex_ir):
    executors = vertex_ir["deploymentSpec"]["executors"]
    for node in ["CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"]:
        args = executors[f"{node}_executor"]["container"]["args"]
        assert "--runner=DataflowRunner" in args and "--max_num_workers=8" in args, node
        assert "--temp_location=gs://my-bucket/keel/beam-tmp" in args, node


def test_kubeflow_target_keeps_the_trainer_in_the_pipeline_image(tmp_path):
    output = compile_pipeline(taxi_spec(tmp_path), "kubeflow", tmp_path / "kfp.json")
    spec = json.loads(output.read_text())["pipelineSpec"]
    assert LOCAL_NODES <= set(spec["root"]["dag"]["tasks"])
    args = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["args"]
    assert "tfx.components.trainer.executor.GenericExecutor" in args


def test_missing_cloud_settings_are_one_line_errors(tmp_path):
    with pytest.raises(SpecError) as caught:
        compile_pipeline(taxi_spec(tmp_path, cloud={"cloud": {"project": "p"}}), "vertex", tmp_path / "p.json")
    assert str(caught.value).splitlines() == [
        "taxi.toml: cloud.pipeline_root: required to compile for vertex",
        "taxi.toml: cloud.image: required to compile for vertex",
        "taxi.toml: cloud.module: required to compile for vertex",
    ]
    spec = tmp_path / "taxi.toml"
    result = keel("compile", spec, "--output", tmp_path / "p.json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: taxi.toml: cloud.pipeline_root: required")


def _jax_on_tpu(tmp_path, **trainer):
    cloud = {**CLOUD, "cloud": {**CLOUD["cloud"], "trainer": {**CLOUD["cloud"]["trainer"], **trainer}}}
    return taxi_spec(tmp_path, cloud={**cloud, "train.backend": "jax"})


def test_a_jax_trainer_on_a_tpu_runs_in_its_own_image(tmp_path):
    image = "us-docker.pkg.dev/my-project/keel/keel-jax-tpu:1.16"
    output = compile_pipeline(_jax_on_tpu(tmp_path, image=image), "vertex", tmp_path / "pipeline.json")
    ir = json.loads(output.read_text())["pipelineSpec"]
    config = json.loads(
        ir["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"][
            "stringValue"
        ]
    )
    pool = config["ai_platform_training_args"]["worker_pool_specs"][0]
    assert pool["machine_spec"] == {"machine_type": "ct5lp-hightpu-4t", "tpu_topology": "2x2"}
    assert pool["container_spec"]["image_uri"] == image
    # The other components keep the pipeline image.
    transform = ir["deploymentSpec"]["executors"]["Transform_executor"]["container"]["image"]
    assert transform == CLOUD["cloud"]["image"]


def test_a_jax_trainer_on_a_tpu_without_a_jax_image_is_a_one_line_error(tmp_path):
    with pytest.raises(SpecError) as caught:
        compile_pipeline(_jax_on_tpu(tmp_path), "vertex", tmp_path / "p.json")
    assert str(caught.value) == (
        "taxi.toml: cloud.trainer.image: required for backend = 'jax' on a TPU trainer (ct5lp-hightpu-4t): "
        "an image with jax[tpu] of the lock's JAX version (see docs/cloud.md)"
    )
    assert not (tmp_path / "p.json").exists()


def _trainer_config(ir: dict) -> dict:
    parameters = ir["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    return json.loads(parameters["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])


def test_several_workers_are_a_vertex_worker_pool_beside_the_chief(tmp_path):
    cloud = {**CLOUD, "cloud": {**CLOUD["cloud"], "trainer": {"machine_type": "n1-standard-8"}}, "train.workers": 4}
    output = compile_pipeline(taxi_spec(tmp_path, cloud=cloud), "vertex", tmp_path / "pipeline.json")
    config = _trainer_config(json.loads(output.read_text())["pipelineSpec"])
    chief, workers = config["ai_platform_training_args"]["worker_pool_specs"]
    assert chief["replica_count"] == 1 and workers["replica_count"] == 3
    for pool in (chief, workers):
        assert pool["machine_spec"] == {"machine_type": "n1-standard-8"}
        assert pool["container_spec"]["image_uri"] == CLOUD["cloud"]["image"]
    assert config["workers"] == 4  # every replica's run_fn reads it; TF_CONFIG comes from Vertex AI


def test_several_workers_on_kubeflow_are_a_one_line_error(tmp_path):
    with pytest.raises(SpecError) as caught:
        compile_pipeline(taxi_spec(tmp_path, cloud={**CLOUD, "train.workers": 2}), "kubeflow", tmp_path / "k.json")
    assert str(caught.value) == (
        "taxi.toml: train.workers = 2: Kubeflow's Trainer runs in one pod; several training processes need "
        "--target vertex (a Vertex AI worker pool) or a local run"
    )
    assert not (tmp_path / "k.json").exists()
