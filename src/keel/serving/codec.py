"""TF Serving's REST predict bodies to numpy columns, and model outputs back to its JSON forms.

Row form: `{"instances": [{"feature": value, ...}, ...]}` answers `{"predictions": [...]}`.
Columnar form: `{"inputs": {"feature": [values...], ...}}` answers `{"outputs": {...}}`.
A signature with a single input also takes bare values (`"instances": [v, ...]`, `"inputs": [...]`).
Strings may be given as `{"b64": "..."}`, as in TF Serving. `null` is a missing value: NaN for
numbers and "" for strings, which is how keel's `serving_raw` signature reads a missing value.

As in TF Serving, an object whose only key is `b64` is a bare binary value, not a feature named
`b64`: `{"instances": [{"b64": "<serialized tf.Example>"}]}` without a `signature_name` goes to the
signature that takes one input (`serving_default`, serialized tf.Examples, in keel's models).

Limits, each a 400 naming it: JSON nested deeper than `MAX_DEPTH` levels is refused before it is
parsed (Python's parser recurses once per level); integers longer than Python's 4300-digit
conversion limit are refused by the parser. The body's size (`--max-body-bytes`) bounds the rest:
string lengths, key counts and rows.

Non-finite numbers (`NaN`, `Infinity`, or a literal such as `1e400` that overflows) and numbers
outside the input's dtype are refused with a 400 naming the feature. TF Serving accepts them, but
keel's models are trained only on finite data (the DataGate rejects NaN and infinity in training
data), so such a value can only give a prediction the model was never checked on; a missing value
is `null`. Outputs that are not finite (a model can overflow on a huge but finite input) are
written as TF Serving writes them: `NaN`, `Infinity`, `-Infinity`.
"""

import base64
import dataclasses
import json
import math
import re
import sys

import numpy as np
import tensorflow as tf

MAX_DEPTH = 32  # levels of [ and { in a body; a batch of rank-4 image tensors in the row form needs 6
SHOWN_CHARS = 60  # longest piece of a request quoted back in an error

# A JSON string, escapes and all; an unterminated one runs to the end. Possessive, so linear time.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int32)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


class RequestError(ValueError):
    """A predict body that does not match the signature; answered with HTTP 400 and the message."""


@dataclasses.dataclass(frozen=True)
class Request:
    signature_name: str | None
    columns: dict[str, list]
    rows: int
    columnar: bool

    @property
    def bare(self) -> bool:
        """Whether the values are unnamed (for a one-input signature) rather than named features."""
        return "" in self.columns


def _shown(value) -> str:
    """`value`'s repr, cut to SHOWN_CHARS so an error stays one short line whatever was sent."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def nesting_depth(body: bytes) -> int:
    """How deeply `body`'s arrays and objects nest, brackets inside strings aside, without parsing it."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return int(np.cumsum(_STEP[np.frombuffer(brackets, dtype=np.uint8)]).max())


def loads(body: bytes):
    """Decodes a UTF-8 JSON body; RequestError names the limit or the syntax error."""
    openers = body.count(b"[") + body.count(b"{")  # a cheap bound: most bodies need no scan
    depth = nesting_depth(body) if openers > MAX_DEPTH else openers
    if depth > MAX_DEPTH:
        raise RequestError(f"the body nests arrays and objects {depth} levels deep; the limit is {MAX_DEPTH}")
    try:
        return json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise RequestError(f"the body is not valid JSON: it is not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise RequestError(f"the body is not valid JSON: {e}") from None
    except ValueError:  # the parser's int() refusing a number too long to convert in reasonable time
        raise RequestError(
            f"the body is not valid JSON for keel: an integer has more than {sys.get_int_max_str_digits()} digits"
        ) from None


def dumps(answer: dict) -> bytes:
    """`answer` as compact UTF-8 JSON; non-finite outputs as TF Serving writes them (NaN, Infinity)."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=True, separators=(",", ":")).encode()


def parse_body(body) -> Request:
    """Splits a decoded JSON predict body into columns of raw Python values (not yet typed)."""
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object with 'instances' or 'inputs', got {type(body).__name__}")
    signature_name = body.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise RequestError(f"'signature_name' must be a string, got {_shown(signature_name)}")
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise RequestError(
            f"unknown key {_shown(unknown[0])} in the body; "
            "expected 'instances' or 'inputs' and optionally 'signature_name'"
        )
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("the body must have exactly one of 'instances' (row form) or 'inputs' (columnar form)")
    if "instances" in body:
        return _rows(body["instances"], signature_name)
    return _columns(body["inputs"], signature_name)


def _is_b64(value) -> bool:
    """TF Serving's binary value: an object whose one key is `b64`, holding a string."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _rows(instances, signature_name) -> Request:
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list")
    named = [isinstance(i, dict) and not _is_b64(i) for i in instances]
    if not all(named):
        if any(named):
            raise RequestError("'instances' mixes objects and bare values")
        return Request(signature_name, {"": instances}, len(instances), columnar=False)
    columns: dict[str, list] = {name: [] for name in instances[0]}
    for index, instance in enumerate(instances):
        if instance.keys() != columns.keys():
            differ = sorted(set(instance) ^ set(columns))[0]
            where = "lacks" if differ in columns else "has"
            raise RequestError(
                f"instances[{index}] {where} feature {_shown(differ)} unlike instances[0]; "
                "every instance needs the same features"
            )
        for name, value in instance.items():
            columns[name].append(value)
    return Request(signature_name, columns, len(instances), columnar=False)


def _columns(inputs, signature_name) -> Request:
    if isinstance(inputs, list):
        inputs = {"": inputs}
    if not isinstance(inputs, dict) or not inputs:
        raise RequestError("'inputs' must be a non-empty object of feature -> list of values, or a list")
    lengths = set()
    for name, values in inputs.items():
        if not isinstance(values, list) or not values:
            raise RequestError(f"inputs[{_shown(name)}] must be a non-empty list of values")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise RequestError(f"every list in 'inputs' must have the same length, got lengths {sorted(lengths)}")
    return Request(signature_name, dict(inputs), lengths.pop(), columnar=True)


def signature_for(request: Request, signatures: dict[str, dict[str, tf.TensorSpec]], default: str) -> str:
    """The signature a request goes to: the one it names; else, for bare values, the one-input
    signature TF Serving would pick (`serving_default` if it takes one input, else the only
    signature that does); else `default`."""
    if request.signature_name:
        return request.signature_name
    if request.bare:
        if len(signatures.get("serving_default", {})) == 1:
            return "serving_default"
        single = [name for name, inputs in signatures.items() if len(inputs) == 1]
        if len(single) == 1:
            return single[0]
    return default


def to_arrays(request: Request, inputs: dict[str, tf.TensorSpec]) -> dict[str, np.ndarray]:
    """Types the request's columns for a signature's inputs; RequestError names the bad feature."""
    columns = request.columns
    if request.bare:
        if len(inputs) != 1:
            raise RequestError(
                f"bare values need a signature with one input; this one takes {len(inputs)}: "
                f"{', '.join(sorted(inputs))}"
            )
        columns = {next(iter(inputs)): columns[""]}
    missing = sorted(set(inputs) - set(columns))
    if missing:
        raise RequestError(f"missing feature {missing[0]!r}; the signature takes: {', '.join(sorted(inputs))}")
    extra = sorted(set(columns) - set(inputs))
    if extra:
        raise RequestError(f"unknown feature {_shown(extra[0])}; the signature takes: {', '.join(sorted(inputs))}")
    return {name: _typed(name, columns[name], spec.dtype) for name, spec in inputs.items()}


def _typed(name: str, values: list, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        return np.array([_string(name, v) for v in values], dtype=object)
    if dtype.is_floating:
        return np.array([_float(name, v, dtype) for v in values], dtype=dtype.as_numpy_dtype)
    if dtype.is_integer:
        return np.array([_integer(name, v, dtype) for v in values], dtype=dtype.as_numpy_dtype)
    raise RequestError(f"feature {name!r}: the signature takes {dtype.name}, which the REST API does not accept")


def _float(name: str, value, dtype: tf.DType) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"feature {name!r}: expected a number or null ({dtype.name}), got {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError(
            f"feature {name!r}: {json.dumps(value)} is not a finite number; "
            "keel's models take finite numbers only (null is a missing value)"
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if abs(number) > dtype.max:
        raise RequestError(f"feature {name!r}: {_shown(value)} is outside the range of {dtype.name}")
    return number


def _integer(name: str, value, dtype: tf.DType) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"feature {name!r}: expected an integer ({dtype.name}), got {_shown(value)}")
    if not dtype.min <= value <= dtype.max:
        raise RequestError(f"feature {name!r}: {_shown(value)} is outside the range of {dtype.name}")
    return value


def _string(name: str, value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        try:
            return value.encode()
        except UnicodeEncodeError:
            raise RequestError(f"feature {name!r}: {_shown(value)} holds a lone surrogate, not UTF-8 text") from None
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise RequestError(f"feature {name!r}: {_shown(value['b64'])} is not valid base64") from None
    raise RequestError(f'feature {name!r}: expected a string, {{"b64": ...}} or null, got {_shown(value)}')


def _jsonable(array: np.ndarray) -> list:
    values = array.tolist()
    if array.dtype != object:
        return values
    return _decoded(values)


def _decoded(values):
    if isinstance(values, list):
        return [_decoded(v) for v in values]
    return values.decode("utf-8", "replace") if isinstance(values, bytes) else values


def render(outputs: dict[str, np.ndarray], columnar: bool) -> dict:
    """The JSON answer in the request's form: `predictions` (row) or `outputs` (columnar)."""
    lists = {name: _jsonable(array) for name, array in outputs.items()}
    if columnar:
        return {"outputs": next(iter(lists.values())) if len(lists) == 1 else lists}
    if len(lists) == 1:
        return {"predictions": next(iter(lists.values()))}
    rows = len(next(iter(lists.values())))
    return {"predictions": [{name: values[i] for name, values in lists.items()} for i in range(rows)]}
