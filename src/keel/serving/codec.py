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


def _signature_name(body: dict) -> str | None:
    """A body's optional `signature_name`; RequestError unless it is a string."""
    name = body.get("signature_name")
    if name is not None and not isinstance(name, str):
        raise RequestError(f"'signature_name' must be a string, got {_shown(name)}")
    return name


def parse_body(body) -> Request:
    """Splits a decoded JSON predict body into columns of raw Python values (not yet typed)."""
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object with 'instances' or 'inputs', got {type(body).__name__}")
    signature_name = _signature_name(body)
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


# --- Classify and Regress: TF Serving's REST `examples` bodies to serialized tf.Examples, results back ---


@dataclasses.dataclass(frozen=True)
class ExamplesRequest:
    """A decoded `:classify` or `:regress` body: `{"signature_name"?, "context"?, "examples": [...]}`."""

    signature_name: str | None
    context: dict
    examples: list[dict]


def parse_examples_body(body) -> ExamplesRequest:
    """Checks a decoded `:classify` / `:regress` body's shape; the values are typed by `to_examples`."""
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object with 'examples', got {type(body).__name__}")
    unknown = sorted(set(body) - {"signature_name", "context", "examples"})
    if unknown:
        raise RequestError(
            f"unknown key {_shown(unknown[0])} in the body; expected 'examples' and optionally "
            "'context' and 'signature_name'"
        )
    signature_name = _signature_name(body)
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise RequestError(f"'context' must be an object of feature -> value, got {_shown(context)}")
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise RequestError("'examples' must be a non-empty list of objects of feature -> value")
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise RequestError(f"examples[{index}] must be an object of feature -> value, got {_shown(example)}")
    return ExamplesRequest(signature_name, context, examples)


def example_kinds(raw_inputs: dict[str, tf.TensorSpec] | None) -> dict[str, str] | None:
    """The tf.Example list kind of each feature a model takes, from its `serving_raw` signature's
    input dtypes: string -> bytes_list, float64 (keel's integer columns) or an integer -> int64_list,
    float32 -> float_list. None when the model has no `serving_raw` (the kinds are then the values')."""
    if raw_inputs is None:
        return None
    kinds = {}
    for name, spec in raw_inputs.items():
        if spec.dtype == tf.string:
            kinds[name] = "bytes_list"
        elif spec.dtype == tf.float64 or spec.dtype.is_integer:
            kinds[name] = "int64_list"
        else:
            kinds[name] = "float_list"
    return kinds


def _kind_of(values: list) -> str:
    """The list kind JSON values ask for when the model does not say (TF Serving's own rule)."""
    if all(isinstance(v, str) or _is_b64(v) for v in values):
        return "bytes_list"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int64_list"
    return "float_list"


def example_from_json(values: dict, kinds: dict[str, str] | None, where: str = "examples[0]") -> tf.train.Example:
    """One tf.Example from a JSON object of feature -> value (a scalar or a list; null is missing).

    `kinds` (from `example_kinds`) says each feature's list kind; an unknown feature, or a value that
    does not fit its kind (a string for a number, 3.5 for an integer column), is a RequestError
    naming `where` and the feature. With `kinds` None the kind follows the values, as in TF Serving.
    """
    example = tf.train.Example()
    for name, value in values.items():
        if kinds is not None and name not in kinds:
            raise RequestError(f"{where}: unknown feature {_shown(name)}; the model takes: {', '.join(sorted(kinds))}")
        if value is None:
            continue  # a missing value: no feature, as ExampleGen writes a missing CSV field
        items = value if isinstance(value, list) else [value]
        if any(v is None for v in items):
            raise RequestError(f"{where}: feature {_shown(name)}: a list may not hold null (omit the feature instead)")
        kind = kinds[name] if kinds is not None else _kind_of(items)
        feature = example.features.feature[name]
        try:
            if kind == "bytes_list":
                feature.bytes_list.value.extend([_string(name, v) for v in items])
            elif kind == "int64_list":
                feature.int64_list.value.extend([_integer(name, v, tf.int64) for v in items])
            else:
                feature.float_list.value.extend([_float(name, v, tf.float32) for v in items])
        except RequestError as e:
            raise RequestError(f"{where}: {e}") from None
    return example


def to_examples(request: ExamplesRequest, kinds: dict[str, str] | None) -> np.ndarray:
    """The request's examples, each merged with the context (the example's own value wins), serialized."""
    example_from_json(request.context, kinds, "context")  # names a bad context value once, as the context's
    serialized = [
        example_from_json({**request.context, **example}, kinds, f"examples[{index}]").SerializeToString()
        for index, example in enumerate(request.examples)
    ]
    return np.array(serialized, dtype=object)


def classifications(outputs: dict[str, np.ndarray], rows: int) -> list[list[tuple[str, float]]]:
    """(label, score) per class per row from a classify signature's `classes` and/or `scores`
    [batch, classes]; a missing one reads as "" or 0.0, as in TF Serving. ValueError on other shapes."""
    classes, scores = outputs.get("classes"), outputs.get("scores")
    if classes is None and scores is None:
        raise ValueError("the signature has neither a 'classes' nor a 'scores' output")
    for name, values in (("classes", classes), ("scores", scores)):
        if values is not None and (values.ndim != 2 or values.shape[0] != rows):
            raise ValueError(
                f"the signature's {name!r} output has shape {list(values.shape)}; expected [{rows}, classes]"
            )
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise ValueError(
            f"the signature's classes {list(classes.shape)} and scores {list(scores.shape)} differ in shape"
        )
    width = (classes if classes is not None else scores).shape[1]
    return [
        [
            (
                classes[i, j].decode("utf-8", "replace") if classes is not None else "",
                float(scores[i, j]) if scores is not None else 0.0,
            )
            for j in range(width)
        ]
        for i in range(rows)
    ]


def regressions(outputs: dict[str, np.ndarray], rows: int) -> list[float]:
    """One value per row from a regress signature's `outputs`, [batch] or [batch, 1]; ValueError otherwise."""
    values = outputs.get("outputs")
    if values is None:
        raise ValueError(f"the signature has no 'outputs' output; it has: {', '.join(sorted(outputs))}")
    if values.shape not in ((rows,), (rows, 1)):
        raise ValueError(f"the signature's 'outputs' has shape {list(values.shape)}; expected [{rows}] or [{rows}, 1]")
    return [float(v) for v in values.reshape(-1)]


def render_classify(outputs: dict[str, np.ndarray], rows: int) -> dict:
    """TF Serving's REST classify answer: `{"results": [[[label, score], ...], ...]}`, a list per example."""
    return {"results": [[[label, score] for label, score in row] for row in classifications(outputs, rows)]}


def render_regress(outputs: dict[str, np.ndarray], rows: int) -> dict:
    """TF Serving's REST regress answer: `{"results": [value, ...]}`, one per example."""
    return {"results": regressions(outputs, rows)}
