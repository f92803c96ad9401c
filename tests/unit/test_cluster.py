"""`[train] workers`: the TF_CONFIG each training process gets, who writes the model, how a process ended."""

import json
import signal

import pytest

from keel.core.errors import SpecError
from keel.executors.training.cluster import (
    check_workers,
    cluster_size,
    free_ports,
    how_it_ended,
    is_chief,
    local_tf_configs,
    role,
)
from keel.executors.training.record import describe_record


def test_local_configs_have_vertex_ais_shape_a_chief_then_workers():
    configs = local_tf_configs([5001, 5002, 5003])
    cluster = {"chief": ["127.0.0.1:5001"], "worker": ["127.0.0.1:5002", "127.0.0.1:5003"]}
    assert configs == [
        {"cluster": cluster, "task": {"type": "chief", "index": 0}},
        {"cluster": cluster, "task": {"type": "worker", "index": 0}},
        {"cluster": cluster, "task": {"type": "worker", "index": 1}},
    ]
    assert [role(c) for c in configs] == ["chief", "worker 1", "worker 2"]
    assert [is_chief(json.dumps(c)) for c in configs] == [True, False, False]
    assert {cluster_size(json.dumps(c)) for c in configs} == {3}


@pytest.mark.parametrize(
    ("tf_config", "chief"),
    [
        ("", True),  # no cluster: one process, which writes the model
        ('{"task": {"type": "worker", "index": 3}}', True),  # a task without a cluster is not distributed
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
        ('{"cluster": {"master": ["a:1"], "worker": ["b:1"]}, "task": {"type": "master", "index": 0}}', True),
        ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}', False),
    ],
)
def test_the_chief_is_the_one_process_that_writes_the_model(tf_config, chief):
    assert is_chief(tf_config) is chief


def test_cluster_size_counts_chief_and_workers_only():
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]}, "task": {}}
    assert cluster_size(json.dumps(config)) == 3
    assert cluster_size("") == 1


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(1024 <= p < 65536 for p in ports)


def test_how_a_process_ended_names_the_signal_or_its_last_line():
    assert how_it_ended(-signal.SIGKILL, "ignored") == "was killed by SIGKILL"
    assert how_it_ended(-signal.SIGSEGV, "") == "was killed by SIGSEGV"
    assert how_it_ended(1, "  ValueError: bad  \n") == "exited with status 1: ValueError: bad"
    assert how_it_ended(3, "") == "exited with status 3"


def test_workers_need_tensorflow_and_no_tpu():
    check_workers(1, "jax", "tpu")
    check_workers(4, "tensorflow", "gpu")
    with pytest.raises(SpecError, match=r'^train.workers = 2: .*backend = "jax" trains in one process'):
        check_workers(2, "jax", "auto")
    with pytest.raises(SpecError, match=r"^train.workers = 2: a TPU trains under TPUStrategy"):
        check_workers(2, "tensorflow", "tpu")


def test_the_summary_line_says_how_many_processes_trained():
    record = {
        "placement": {"strategy": "MultiWorkerMirroredStrategy", "device": "cpu", "replicas": 2, "workers": 2},
        "precision": "float32",
        "global_batch_size": 64,
        "jit": {"jit_compile": False, "setting": "auto", "reason": "not timed"},
    }
    assert describe_record(record).startswith(
        "MultiWorkerMirroredStrategy on 2 CPU replicas in 2 processes, float32, global batch 64; XLA off"
    )
