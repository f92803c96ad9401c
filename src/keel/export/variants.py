"""TFLiteConverter settings for each variant keel exports, and the conversion itself.

- float32: no optimisation; the reference the others are measured against.
- float16: weights stored as float16 (half the size), computed in float32 on most CPUs.
- dynamic: dynamic-range quantization: int8 weights, activations quantized on the fly.
- int8: full integer quantization: int8 weights and activations, calibrated on representative
  rows from the train split; the interface stays float32 (and string for text) so every variant
  takes the same inputs.
"""

import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from keel.core.errors import ExportError
from keel.core.spec import LITE_VARIANTS as VARIANTS
from keel.export.examples import row_count, rows_of
from keel.export.mobile import MOBILE_SIGNATURE


def _configure(converter, variant: str, representative: Callable[[], Iterable[dict[str, np.ndarray]]] | None):
    if variant == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def _unsupported_ops(message: str) -> list[str]:
    return sorted(set(re.findall(r"'tf\.(\w+)' op", message)))


def convert(mobile_dir: Path, variant: str, representative_inputs: dict[str, np.ndarray]) -> bytes:
    """Converts the mobile SavedModel to `variant`; raises ExportError naming the ops that failed.

    `representative_inputs`: the mobile inputs of the train rows int8 calibrates on."""
    if variant not in VARIANTS:
        raise ExportError(f"export.lite.variants: {variant!r} is not a variant; expected one of: {', '.join(VARIANTS)}")

    def representative():
        for i in range(row_count(representative_inputs)):
            yield rows_of(representative_inputs, i, i + 1)

    converter = tf.lite.TFLiteConverter.from_saved_model(str(mobile_dir), signature_keys=[MOBILE_SIGNATURE])
    _configure(converter, variant, representative)
    try:
        return converter.convert()
    except Exception as e:  # ConverterError and friends: report which ops, not the MLIR dump
        ops = _unsupported_ops(str(e))
        named = f"ops LiteRT has no kernel for: {', '.join(ops)}" if ops else str(e).strip().splitlines()[-1]
        raise ExportError(f"{variant}: TFLiteConverter failed ({named})") from None
