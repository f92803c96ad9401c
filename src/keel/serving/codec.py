"""TF Serving's REST predict bodies to numpy columns, and model outputs back to its JSON forms.

Row form: `{"instances": [{"feature": value, ...}, ...]}` answers `{"predictions": [...]}`.
Columnar form: `{"inputs": {"feature": [values...], ...}}` answers `{"outputs": {...}}`.
A signature with a single input also takes bare values (`"instances": [v, ...]`, `"inputs": [...]`).
Strings may be given as `{"b64": "..."}`, as in TF Serving. `null` is a missing value: NaN for
numbers and "" for strings, which is how keel's `serving_raw` signature reads a missing value.
"""

import base64
import binascii
import dataclasses
import math

import numpy as np
import tensorflow as tf


class RequestError(ValueError):
    """A predict body that does not match the signature; answered with HTTP 400 and the message."""


@dataclasses.dataclass(frozen=True)
class Request:
    signature_name: str | None
    columns: dict[str, list]
    rows: int
    columnar: bool


def parse_body(body) -> Request:
    """Splits a decoded JSON predict body into columns of raw Python values (not yet typed)."""
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object with 'instances' or 'inputs', got {type(body).__name__}")
    signature_name = body.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise RequestError(f"'signature_name' must be a string, got {signature_name!r}")
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise RequestError(
            f"unknown key {unknown[0]!r} in the body; expected 'instances' or 'inputs' and optionally 'signature_name'"
        )
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("the body must have exactly one of 'instances' (row form) or 'inputs' (columnar form)")
    if "instances" in body:
        return _rows(body["instances"], signature_name)
    return _columns(body["inputs"], signature_name)


def _rows(instances, signature_name) -> Request:
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list")
    if not all(isinstance(i, dict) for i in instances):
        if any(isinstance(i, dict) for i in instances):
            raise RequestError("'instances' mixes objects and bare values")
        return Request(signature_name, {"": instances}, len(instances), columnar=False)
    columns: dict[str, list] = {name: [] for name in instances[0]}
    for index, instance in enumerate(instances):
        if instance.keys() != columns.keys():
            differ = sorted(set(instance) ^ set(columns))[0]
            where = "lacks" if differ in columns else "has"
            raise RequestError(
                f"instances[{index}] {where} feature {differ!r} unlike instances[0]; "
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
            raise RequestError(f"inputs[{name!r}] must be a non-empty list of values")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise RequestError(f"every list in 'inputs' must have the same length, got lengths {sorted(lengths)}")
    return Request(signature_name, dict(inputs), lengths.pop(), columnar=True)


def to_arrays(request: Request, inputs: dict[str, tf.TensorSpec]) -> dict[str, np.ndarray]:
    """Types the request's columns for a signature's inputs; RequestError names the bad feature."""
    columns = request.columns
    if "" in columns:
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
        raise RequestError(f"unknown feature {extra[0]!r}; the signature takes: {', '.join(sorted(inputs))}")
    return {name: _typed(name, columns[name], spec.dtype) for name, spec in inputs.items()}


def _typed(name: str, values: list, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        return np.array([_string(name, v) for v in values], dtype=object)
    if dtype.is_floating or dtype.is_integer:
        out = []
        for v in values:
            if v is None and dtype.is_floating:
                v = math.nan
            elif (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or (dtype.is_integer and not float(v).is_integer())
            ):
                kind = "an integer" if dtype.is_integer else "a number or null"
                raise RequestError(f"feature {name!r}: expected {kind} ({dtype.name}), got {v!r}")
            out.append(v)
        return np.array(out, dtype=dtype.as_numpy_dtype)
    raise RequestError(f"feature {name!r}: the signature takes {dtype.name}, which the REST API does not accept")


def _string(name: str, value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and value.keys() == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise RequestError(f"feature {name!r}: {value['b64'][:40]!r} is not valid base64") from None
    raise RequestError(f'feature {name!r}: expected a string, {{"b64": ...}} or null, got {value!r}')


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
