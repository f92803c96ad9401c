"""Schema drift: this span's columns against those the blessed model was trained on.

A later span can arrive with a column retyped (pandas writes a float column without gaps as
integers), dropped or added. The blessed model is the Evaluator's baseline and what is being served:
its serving signature parses each column as the type it was trained on, so a retyped column would
fail inside the Evaluator and at the server. `drift(schema, baseline, config, version)` returns
(problems, warnings), one plain-words line each:
- a column the model reads (a declared feature or the label) whose type differs from the baseline's,
  or that the baseline had and this data lacks, is a problem that stops the run at DataGate;
- a column this data has and the baseline did not is a warning: the model reads only the columns
  the spec declares, so it is ignored (DataGate makes it a problem with `data.new_columns = "error"`).
"""

from tensorflow_metadata.proto.v0 import schema_pb2

from keel.pipeline.config import GateConfig

TYPE_NAMES = {schema_pb2.INT: "integers", schema_pb2.FLOAT: "floats", schema_pb2.BYTES: "text"}
HOW_TO_FIX = {
    (schema_pb2.FLOAT, schema_pb2.INT): "write the column with a decimal point (3.0, not 3), as the earlier spans were",
    (schema_pb2.INT, schema_pb2.FLOAT): "write it as whole numbers, as the earlier spans were",
}


def _types(schema: schema_pb2.Schema) -> dict[str, int]:
    return {f.name: f.type for f in schema.feature}


def drift(
    schema: schema_pb2.Schema, baseline: schema_pb2.Schema, config: GateConfig, version: str
) -> tuple[list[str], list[str]]:
    """What changed between `baseline` (the schema blessed version `version` was trained on) and `schema`."""
    now, before = _types(schema), _types(baseline)
    read = [config.label, *config.numeric, *config.categorical]
    problems, warnings = [], []
    for name in read:
        if name not in before:
            continue  # new to the spec as well: nothing served reads it yet
        if name not in now:
            problems.append(
                f"column {name!r} is not in this data, but the blessed model (version {version}) was trained "
                "on it: add it back, or drop it from the spec's features"
            )
        elif now[name] != before[name]:
            was, found = TYPE_NAMES.get(before[name], "?"), TYPE_NAMES.get(now[name], "?")
            fix = HOW_TO_FIX.get((before[name], now[name]), "write it as the earlier spans were")
            problems.append(
                f"column {name!r} holds {found} here but {was} in the data the blessed model (version {version}) "
                f"was trained on, which parses it as {was} when evaluated and served: {fix}"
            )
    added = sorted(set(now) - set(before) - set(read))
    if added:
        warnings.append(
            f"column(s) {', '.join(repr(a) for a in added)} are new since the blessed model (version {version}); "
            "the model does not read them (the spec's features name its inputs)"
        )
    return problems, warnings
