"""`keel diff A B`: what changed between two models, from their lineage in ML Metadata.

The resolved spec (field by field), the data (span, files and fingerprints, rows per split, schema
features, and a per-feature distribution distance between the two training splits computed by
TFDV's drift comparators from the runs' statistics), the code, borrowed weights and the metrics.
"""

from pathlib import Path

from keel.core.tasks import METRICS
from keel.mlmd import lineage, text
from keel.mlmd import store as metadata
from keel.mlmd.lineage import Lineage
from keel.registry import stages as registry

# TFDV's drift comparators: Jensen-Shannon divergence for numeric features, L-infinity distance of
# the value frequencies for categorical ones. A zero threshold makes TFDV report every measurement.
NUMERIC, CATEGORICAL = "jensen_shannon_divergence", "infinity_norm"


def resolve(store, ref: str):
    """The model behind `ref`: a pushed version, a run id, `latest` or a registry index."""
    try:
        return lineage.resolve_model(store, ref, by_artifact_id=False)
    except lineage.UnknownModelError:
        pass
    try:
        return lineage.trained_model_of(store, registry.find(store, ref).artifact)
    except registry.RegistryError:
        versions = ", ".join(f"{v.index} ({v.version})" for v in registry.versions(store)) or "none yet"
        raise lineage.UnknownModelError(
            f"model {ref!r}: no pushed version, run id or registry index by that name; "
            f"expected latest, a run id or one of: {versions}"
        ) from None


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "hparams":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def spec_changes(a: dict, b: dict) -> list[dict]:
    """Fields of the resolved spec whose values differ, e.g. {"field": "train.steps", "a": 200, "b": 250}.

    `absent` lists the sides whose spec has no such field (recorded by a keel without it).
    """
    fa, fb = _flatten(a), _flatten(b)
    changes = []
    for key in sorted(fa.keys() | fb.keys()):
        if key not in fa or key not in fb or fa[key] != fb[key]:
            absent = [side for side, flat in (("a", fa), ("b", fb)) if key not in flat]
            changes.append({"field": key, "a": fa.get(key), "b": fb.get(key), "absent": absent})
    return changes


def change_text(change: dict) -> str:
    """One of `spec_changes` as text: "train.steps: 200 -> 250" ("(absent)" for a side without the field)."""
    a, b = ("(absent)" if side in change["absent"] else repr(change[side]) for side in ("a", "b"))
    return f"{change['field']}: {a} -> {b}"


def _schema(record: Lineage):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    if record.schema_file is None:
        return None
    return text_format.Parse(record.schema_file.read_text(), schema_pb2.Schema())


def schema_changes(a, b) -> list[str]:
    """Features added, removed or changed between two schemas."""
    if a is None or b is None:
        return []
    from tensorflow_metadata.proto.v0 import schema_pb2

    fa, fb = {f.name: f for f in a.feature}, {f.name: f for f in b.feature}
    changes = [f"feature {n!r} added" for n in sorted(fb.keys() - fa.keys())]
    changes += [f"feature {n!r} removed" for n in sorted(fa.keys() - fb.keys())]
    for name in sorted(fa.keys() & fb.keys()):
        x, y = fa[name], fb[name]
        if x.type != y.type:
            changes.append(
                f"feature {name!r}: type {schema_pb2.FeatureType.Name(x.type)} -> {schema_pb2.FeatureType.Name(y.type)}"
            )
        elif x != y:
            changes.append(f"feature {name!r}: constraints changed (presence, shape or domain)")
    return changes


def _train_statistics(record: Lineage):
    import tensorflow_data_validation as tfdv

    path = record.train_statistics_file
    return tfdv.load_stats_binary(str(path)) if path and path.exists() else None


def distribution_distances(a: Lineage, b: Lineage, schema) -> dict[str, dict]:
    """Per-feature distance between the two models' training splits, measured by TFDV's drift comparators."""
    if schema is None or a.data.statistics is None or b.data.statistics is None:
        return {}
    if a.data.statistics.artifact_id == b.data.statistics.artifact_id:
        return {}  # the same examples: nothing to measure
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    previous, current = _train_statistics(a), _train_statistics(b)
    if previous is None or current is None:
        return {}
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    for feature in schema.feature:
        comparator = CATEGORICAL if feature.type == schema_pb2.BYTES else NUMERIC
        getattr(feature.drift_comparator, comparator).threshold = 0.0
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    found = {}
    for info in anomalies.drift_skew_info:
        for m in info.drift_measurements:
            found[".".join(info.path.step)] = {"measure": m.Type.Name(m.type), "value": m.value}
    return dict(sorted(found.items(), key=lambda kv: -kv[1]["value"]))


def _side(record: Lineage) -> dict:
    return {
        "model_artifact_id": record.model.artifact_id,
        "run": record.run.id,
        "pushed": [p.version for p in record.pushed],
    }


def _pair(a, b) -> dict:
    return {"a": a, "b": b}


def compare(a: Lineage, b: Lineage) -> dict:
    """The differences between two models' lineage, as plain JSON-ready data (what `keel diff --json` prints)."""
    files_a, files_b = a.data.file_sha256, b.data.file_sha256
    ma, mb = a.evaluation.values, b.evaluation.values
    examples = [r.data.examples.artifact_id if r.data.examples else None for r in (a, b)]
    schema_a, schema_b = _schema(a), _schema(b)
    return {
        "a": _side(a),
        "b": _side(b),
        "spec": {
            "path": _pair(a.spec.path, b.spec.path),
            "sha256": _pair(a.spec.sha256, b.spec.sha256),
            "changes": spec_changes(a.spec.resolved, b.spec.resolved),
        },
        "data": {
            "span": _pair(a.data.span, b.data.span),
            "files": {
                "added": sorted(files_b.keys() - files_a.keys()),
                "removed": sorted(files_a.keys() - files_b.keys()),
                "changed": sorted(p for p in files_a.keys() & files_b.keys() if files_a[p] != files_b[p]),
                "sha256": _pair(files_a, files_b),
            },
            "same_examples": examples[0] == examples[1],
            "rows": _pair(a.data.rows, b.data.rows),
            "schema": {
                "sha256": _pair(*(r.schema.sha256 if r.schema else None for r in (a, b))),
                "changes": schema_changes(schema_a, schema_b),
            },
            "distribution_distance": distribution_distances(a, b, schema_b),
        },
        "code": {k: _pair(a.code.get(k), b.code.get(k)) for k in ("module", "module_sha256", "git_commit")},
        "warm_start": _pair(*(r.warm_start.sha256 if r.warm_start else None for r in (a, b))),
        "metrics": {
            k: {"a": ma.get(k), "b": mb.get(k), "delta": mb[k] - ma[k] if k in ma and k in mb else None}
            for k in sorted(ma.keys() | mb.keys())
        },
    }


def _better_or_worse(metric: str, delta: float) -> str:
    known = METRICS.get(metric)
    if known is None or delta == 0:
        return ""
    return ", better" if (delta > 0) == known.higher_is_better else ", worse"


def diff(workdir: Path, ref_a: str, ref_b: str) -> dict:
    """What changed from model `ref_a` to model `ref_b` in `workdir`."""
    store = metadata.open_store(workdir)
    a, b = (lineage.lineage(store, resolve(store, ref)) for ref in (ref_a, ref_b))
    result = compare(a, b)
    result["a"]["ref"], result["b"]["ref"] = ref_a, ref_b
    return result


def _same_or(pair: dict, show=str) -> str:
    a, b = pair["a"], pair["b"]
    return f"same ({show(a)})" if a == b else f"{show(a)} -> {show(b)}"


def render(d: dict) -> str:
    """The diff as readable text."""

    def who(side: dict) -> str:
        pushed = f", version {', '.join(side['pushed'])}" if side["pushed"] else ""
        return f"{side['ref']} (model {side['model_artifact_id']}, run {side['run']}{pushed})"

    lines = [f"a: {who(d['a'])}", f"b: {who(d['b'])}", "spec:"]
    spec = d["spec"]
    if spec["path"]["a"] != spec["path"]["b"]:
        lines.append(f"  file: {spec['path']['a']} -> {spec['path']['b']}")
    lines += [f"  {change_text(c)}" for c in spec["changes"]]
    if not spec["changes"]:
        lines.append("  no field changed")
    data = d["data"]
    lines += ["data:", f"  span: {_same_or(data['span'])}"]
    files = data["files"]
    for path in files["removed"]:
        lines.append(f"  - {path} (sha256 {text.short_sha(files['sha256']['a'][path])})")
    for path in files["added"]:
        lines.append(f"  + {path} (sha256 {text.short_sha(files['sha256']['b'][path])})")
    for path in files["changed"]:
        lines.append(
            f"  ~ {path} (sha256 {text.short_sha(files['sha256']['a'][path])} -> "
            f"{text.short_sha(files['sha256']['b'][path])})"
        )
    if not (files["removed"] or files["added"] or files["changed"]):
        lines.append(f"  files: same ({len(files['sha256']['a'])} file(s), same sha256)")
    rows = data["rows"]
    splits = sorted(rows["a"].keys() | rows["b"].keys(), key=lambda s: (s != "train", s))
    lines.append(
        "  rows: "
        + ", ".join(
            f"{s} {rows['a'].get(s, '-')} -> {rows['b'].get(s, '-')}"
            if rows["a"].get(s) != rows["b"].get(s)
            else f"{s} {rows['a'][s]} (same)"
            for s in splits
        )
    )
    schema = data["schema"]
    if schema["changes"]:
        lines += [f"  schema: {c}" for c in schema["changes"]]
    else:
        lines.append(f"  schema: {'same' if schema['sha256']['a'] == schema['sha256']['b'] else 'same features'}")
    if data["distribution_distance"]:
        lines.append(
            "  distribution distance of the training splits (TFDV; numeric: Jensen-Shannon divergence, "
            "categorical: L-infinity):"
        )
        for name, m in data["distribution_distance"].items():
            lines.append(f"    {name:<24} {m['value']:.4f}  {m['measure']}")
    elif data["same_examples"]:
        lines.append("  examples: the same ExampleGen output")
    lines.append("code:")
    lines.append(f"  module: {_same_or(d['code']['module'])}")
    lines.append(f"  module sha256: {_same_or(d['code']['module_sha256'], text.short_sha)}")
    lines.append(f"  git commit: {_same_or(d['code']['git_commit'], text.short_sha)}")
    lines.append(f"borrowed weights: {_same_or(d['warm_start'], lambda s: text.short_sha(s) if s else 'none')}")
    lines.append("metrics:")
    for name, m in d["metrics"].items():
        delta = f" ({text.signed(m['delta'])}{_better_or_worse(name, m['delta'])})" if m["delta"] is not None else ""
        lines.append(f"  {name}: {text.number(m['a'])} -> {text.number(m['b'])}{delta}")
    if not d["metrics"]:
        lines.append("  neither model was evaluated")
    return "\n".join(lines)
