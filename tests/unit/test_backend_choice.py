"""`train.backend`: what "auto" resolves to on this machine, bad values, and the record's summary line."""

import pytest

from keel.core.errors import SpecError
from keel.executors.training.jax_backend import resolve_backend
from keel.executors.training.record import describe_record


def test_explicit_backends_resolve_to_themselves():
    assert resolve_backend("tensorflow") == "tensorflow"
    assert resolve_backend("jax") == "jax"  # JAX is in every keel lock


def test_auto_keeps_tensorflow_without_a_tpu():
    assert resolve_backend("auto") == "tensorflow"  # this machine has no TPU


def test_an_unknown_backend_names_the_key():
    with pytest.raises(SpecError, match=r"train.backend: got 'mxnet'; expected one of: tensorflow, jax, auto"):
        resolve_backend("mxnet")


def test_the_jax_record_line_says_devices_and_agreement():
    record = {
        "backend": "jax",
        "jax_version": "0.4.34",
        "platform": "cpu",
        "devices": ["TFRT_CPU_0", "TFRT_CPU_1"],
        "precision": "float32",
        "global_batch_size": 64,
        "agreement": {"rows": 58, "max_abs_diff": 1.8e-07},
    }
    assert describe_record(record) == (
        "JAX 0.4.34 on 2 CPU devices, DataParallel, float32, global batch 64; every step compiled by jax.jit; "
        "the exported TensorFlow model agrees on 58 eval rows (max abs diff 1.8e-07)"
    )
