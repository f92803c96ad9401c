"""`train.precision` -> the Keras dtype policy the user's model is built under.

"auto" picks per device: mixed_bfloat16 on TPUs (their matrix units are bfloat16), mixed_float16 on
GPUs whose tensor cores take float16 (compute capability 7.0 or newer), float32 otherwise (CPUs and
older GPUs, where mixed precision is slower). Variables stay float32 under the mixed policies; Keras
adds loss scaling for mixed_float16 itself. The serving signatures return float32 whatever the policy.
"""

import contextlib

import keras
import tensorflow as tf

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def _gpus_have_tensor_cores() -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus]
    return bool(capabilities) and min(capabilities) >= (7, 0)


def resolve_precision(setting: str, device: str) -> str:
    """The dtype policy name for the spec's `train.precision` on `device` ("tpu", "gpu" or "cpu")."""
    if setting not in PRECISIONS:
        raise ValueError(f"train.precision: got {setting!r}; expected one of: {', '.join(PRECISIONS)}")
    if setting != "auto":
        return setting
    if device == "tpu":
        return "mixed_bfloat16"
    if device == "gpu" and _gpus_have_tensor_cores():
        return "mixed_float16"
    return "float32"


@contextlib.contextmanager
def dtype_policy(name: str):
    """Builds layers under the policy `name`, restoring the previous global policy afterwards."""
    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)
