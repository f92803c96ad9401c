"""The operators a .tflite model uses, read from its flatbuffer, and the refusal of Select TF ops.

A model converted with Select TF ops carries them as custom operators named `Flex<TF op>`. LiteRT
2.x on Android and TensorFlow >= 2.20's interpreter do not run them, and they cost megabytes, so
no variant that needs one is exported.
"""

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from keel.core.errors import ExportError

FLEX_PREFIX = "Flex"
_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def model_ops(content: bytes) -> list[str]:
    """The sorted names of the operators `content` uses: builtin names (ADD, HASHTABLE_FIND, ...) and
    custom ones as named in the model (FlexAsString, ...)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    names = set()
    for code in model.operatorCodes:
        if code.customCode:
            names.add(code.customCode.decode())
        else:
            # builtin codes above 127 live in builtinCode; deprecatedBuiltinCode keeps the old byte
            names.add(_BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode)))
    return sorted(names)


def refuse_flex(variant: str, ops: list[str]) -> None:
    """Raises ExportError naming the Select TF ops in `ops`, if any."""
    flex = [op for op in ops if op.startswith(FLEX_PREFIX)]
    if flex:
        raise ExportError(
            f"{variant}: needs Select TF ops ({', '.join(flex)}), which LiteRT on Android and "
            "TensorFlow >= 2.20's interpreter do not run"
        )
