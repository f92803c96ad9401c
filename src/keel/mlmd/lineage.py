"""What produced a model, read from ML Metadata by walking events from the model artifact.

From the Trainer's Model artifact: back to the Transform, the ExampleGen examples, their statistics,
the schema and the borrowed weights; to the pipeline run that trained it (the resolved spec, data
files and code recorded by `keel run`); forward to the Evaluator's metrics and blessing, the
pushed versions and any other export of the model (e.g. LiteRT).
"""

import json
from pathlib import Path

from keel.mlmd import store as metadata
from keel.core.errors import KeelError

TRAINER, TRANSFORM, STATISTICS, EVALUATOR, PUSHER = "Trainer", "Transform", "StatisticsGen", "Evaluator", "Pusher"


class UnknownModelError(KeelError):
    """A model reference (version, artifact id, run id, index) names nothing in the workdir."""


def _first(by_key: dict, key: str):
    found = by_key.get(key) or []
    return found[0] if found else None


def _json(context, key: str, default=None):
    value = metadata.custom(context, key) if context is not None else None
    return json.loads(value) if value else default


def _exec_json(execution, key: str) -> dict:
    value = metadata.custom(execution, key)
    return json.loads(value) if value else {}


def _sha256_of(uri: str | None) -> str | None:
    from keel.core.fingerprint import path_sha256

    return path_sha256(Path(uri)) if uri and Path(uri).exists() else None


def split_rows(statistics_uri: str) -> dict[str, int]:
    """Rows per split, from the StatisticsGen output's FeatureStats.pb files."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    rows = {}
    for split_dir in sorted(Path(statistics_uri).glob("Split-*")):
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString((split_dir / "FeatureStats.pb").read_bytes())
        rows[split_dir.name.removeprefix("Split-")] = sum(d.num_examples for d in stats.datasets)
    return rows


def pushed_models(store) -> list:
    """PushedModel artifacts that were actually pushed (blessed), oldest first."""
    return sorted((a for a in store.get_artifacts_by_type("PushedModel") if metadata.custom(a, "pushed", 0)),
                  key=lambda a: a.id)


def trained_model_of(store, artifact):
    """The Trainer's Model artifact behind `artifact` (a Model, or a PushedModel traced to its Pusher)."""
    if artifact.type == "PushedModel":
        pusher = metadata.producer(store, artifact.id)
        model = _first(metadata.inputs(store, pusher.id), "model") if pusher else None
        if model is None:
            raise UnknownModelError(f"pushed model {artifact.id} has no recorded model input")
        return model
    if artifact.type != "Model":
        raise UnknownModelError(f"artifact {artifact.id} is a {artifact.type}; expected a Model or PushedModel")
    return artifact


def model_of_run(store, run_name: str):
    """The Model the Trainer of pipeline run `run_name` produced (or reused from the cache)."""
    run = store.get_context_by_type_and_name("pipeline_run", run_name)
    if run is None:
        return None
    for node in metadata.run_executions(store, run):
        if node.node_id == TRAINER:
            model = _first(metadata.outputs(store, node.execution.id), "model")
            if model is not None:
                return model
    raise UnknownModelError(f"run {run_name} trained no model (it stopped before the Trainer)")


def latest_model(store):
    """The model of the newest run that has one."""
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
    for run in reversed(runs):
        try:
            model = model_of_run(store, run.name)
        except UnknownModelError:
            continue
        if model is not None:
            return model
    raise UnknownModelError("no run in this workdir has trained a model yet")


def resolve_model(store, ref: str, by_artifact_id: bool = True):
    """The Trainer Model artifact for `ref`: `latest`, a pushed version, a run id or (optionally) an artifact id."""
    if ref == "latest":
        return latest_model(store)
    for pushed in pushed_models(store):
        if metadata.custom(pushed, "pushed_version") == ref:
            return trained_model_of(store, pushed)
    model = model_of_run(store, ref)
    if model is not None:
        return model
    if by_artifact_id and ref.isdigit():
        found = store.get_artifacts_by_id([int(ref)])
        if found:
            return trained_model_of(store, found[0])
    versions = ", ".join(metadata.custom(p, "pushed_version") for p in pushed_models(store)) or "none yet"
    raise UnknownModelError(f"model {ref!r}: no pushed version, run id or artifact id by that name; "
                            f"expected latest or one of the pushed versions: {versions}")


def evaluation_of(store, model) -> dict:
    """Metrics and blessing of the Evaluator that judged `model` as its candidate."""
    from keel.runners.summary import eval_metrics

    for execution in metadata.consumers(store, model.id).get("model", []):
        if metadata.node_id(store, execution) != EVALUATOR:
            continue
        outputs = metadata.outputs(store, execution.id)
        evaluation, blessing = _first(outputs, "evaluation"), _first(outputs, "blessing")
        if evaluation is None:
            continue
        baseline = _first(metadata.inputs(store, execution.id), "baseline_model")
        return {"metrics": eval_metrics(evaluation.uri), "evaluation_uri": evaluation.uri,
                "blessed": bool(metadata.custom(blessing, "blessed", 0)) if blessing else None,
                "baseline_model_id": baseline.id if baseline else None}
    return {"metrics": {}, "evaluation_uri": None, "blessed": None, "baseline_model_id": None}


def _downstream(store, model) -> tuple[list, list]:
    """Pushed versions, and every other artifact derived from the model (LiteRT exports and the like)."""
    pushed, exports, seen = [], [], set()
    for executions in metadata.consumers(store, model.id).values():
        for execution in executions:
            node = metadata.node_id(store, execution)
            if node in (EVALUATOR, "baseline") or execution.last_known_state != execution.COMPLETE:
                continue
            for out_key, artifacts in metadata.outputs(store, execution.id).items():
                for artifact in artifacts:
                    if artifact.id in seen:
                        continue
                    seen.add(artifact.id)
                    if artifact.type == "PushedModel":
                        if metadata.custom(artifact, "pushed", 0):
                            pushed.append({"version": metadata.custom(artifact, "pushed_version"),
                                           "destination": metadata.custom(artifact, "pushed_destination"),
                                           "artifact_id": artifact.id})
                    elif node != TRAINER:
                        exports.append({"node": node, "output": out_key, "type": artifact.type,
                                        "artifact_id": artifact.id, "uri": artifact.uri})
    return pushed, exports


def lineage(store, model) -> dict:
    """Everything ML Metadata knows about what produced `model` (a Trainer Model artifact), as plain data."""
    trainer = metadata.producer(store, model.id)
    if trainer is None:
        raise UnknownModelError(f"model {model.id} has no producing execution in ML Metadata")
    run = metadata.run_of(store, trainer)
    trainer_inputs = metadata.inputs(store, trainer.id)
    config = _exec_json(trainer, "custom_config")

    transform_graph = _first(trainer_inputs, "transform_graph")
    schema = _first(trainer_inputs, "schema")
    warm = _first(trainer_inputs, "base_model")
    examples = None
    transformed = _first(trainer_inputs, "examples")
    transform = metadata.producer(store, transformed.id) if transformed else None
    if transform is not None:
        examples = _first(metadata.inputs(store, transform.id), "examples")
    statistics = None
    if examples is not None:
        for execution in metadata.consumers(store, examples.id).get("examples", []):
            if metadata.node_id(store, execution) == STATISTICS:
                statistics = _first(metadata.outputs(store, execution.id), "statistics")
                if statistics is not None:
                    break

    data = _json(run, "keel_data", {})
    # Runs recorded before keel_code existed: what the Trainer's config knows (no git commit).
    code = _json(run, "keel_code") or {"module": config.get("module"), "module_sha256": config.get("module_sha256")}
    pushed, exports = _downstream(store, model)
    schema_file = Path(schema.uri) / "schema.pbtxt" if schema else None
    return {
        "model": {"artifact_id": model.id, "uri": model.uri, "created_ms": model.create_time_since_epoch},
        "run": {"id": run.name if run else None, "trainer_execution_id": trainer.id},
        "spec": {"path": metadata.custom(run, "keel_spec_path") if run else None,
                 "sha256": metadata.custom(run, "keel_spec_sha256") if run else None,
                 "resolved": _json(run, "keel_spec", {})},
        "data": {
            "source": data.get("source"),
            "span": data.get("span"),
            "files": data.get("files", []),
            "origin": data.get("origin"),
            "examples": {"artifact_id": examples.id, "uri": examples.uri, "span": metadata.prop(examples, "span"),
                         "version": metadata.prop(examples, "version"),
                         "fingerprint": metadata.prop(examples, "input_fingerprint")} if examples else None,
            "statistics": {"artifact_id": statistics.id, "uri": statistics.uri} if statistics else None,
            "rows": split_rows(statistics.uri) if statistics else {},
        },
        "schema": {"artifact_id": schema.id, "uri": schema.uri,
                   "sha256": _sha256_of(str(schema_file)) if schema_file else None} if schema else None,
        "transform_graph": {"artifact_id": transform_graph.id, "uri": transform_graph.uri,
                            "sha256": _sha256_of(transform_graph.uri)} if transform_graph else None,
        "training": {"steps": _exec_json(trainer, "train_args").get("num_steps"),
                     "eval_steps": _exec_json(trainer, "eval_args").get("num_steps"),
                     "batch_size": config.get("batch_size"), "seed": config.get("seed"),
                     "hparams": config.get("hparams", {})},
        "code": code,
        "warm_start": {"artifact_id": warm.id, "uri": warm.uri, "sha256": metadata.custom(warm, "sha256")}
        if warm else None,
        "evaluation": evaluation_of(store, model),
        "pushed": pushed,
        "exports": exports,
    }


def model_lineage(workdir: Path, ref: str = "latest") -> dict:
    """The lineage of the model `ref` (latest, a pushed version, a run id or an artifact id) in `workdir`."""
    store = metadata.open_store(workdir)
    return lineage(store, resolve_model(store, ref))


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def render(record: dict) -> str:
    """The lineage as readable text."""
    m, spec, data, training, code = (record[k] for k in ("model", "spec", "data", "training", "code"))
    lines = [f"model {m['artifact_id']} ({m['uri']})", f"  run: {record['run']['id']}",
             f"  spec: {spec['path']} (sha256 {_short(spec['sha256'])})"]
    span = f", span {data['span']}" if data.get("span") is not None else ""
    if data["examples"]:
        span += f" (examples {data['examples']['artifact_id']})"
    lines.append(f"  data: {data['source']}{span}")
    for f in data["files"]:
        lines.append(f"    {f['path']} (sha256 {_short(f['sha256'])})")
    if data["rows"]:
        lines.append("    rows: " + ", ".join(f"{k} {v}" for k, v in sorted(data["rows"].items(),
                                                                         key=lambda kv: (kv[0] != "train", kv[0]))))
    if record["schema"]:
        lines.append(f"  schema: {record['schema']['uri']} (sha256 {_short(record['schema']['sha256'])})")
    if record["transform_graph"]:
        tg = record["transform_graph"]
        lines.append(f"  transform graph: {tg['uri']} (sha256 {_short(tg['sha256'])})")
    lines.append(f"  training: steps {training['steps']}, eval_steps {training['eval_steps']}, batch_size "
                 f"{training['batch_size']}, seed {training['seed']}, hparams {json.dumps(training['hparams'])}")
    commit = code.get("git_commit")
    if "git_commit" not in code:
        where = "git commit not recorded"
    elif commit:
        where = f"git {commit[:12]}" + (", module not as committed" if code.get("module_modified_since_commit") else "")
    else:
        where = "not in a git repository"
    lines.append(f"  code: {code['module']} (sha256 {_short(code['module_sha256'])}, {where})")
    warm = record["warm_start"]
    lines.append(f"  borrowed weights: {warm['uri']} (sha256 {_short(warm['sha256'])})" if warm
                 else "  borrowed weights: none")
    ev = record["evaluation"]
    if ev["metrics"]:
        shown = ", ".join(f"{k} {_number(v)}" for k, v in ev["metrics"].items() if not k.endswith("_diff"))
        blessed = {True: "blessed", False: "not blessed", None: "no blessing"}[ev["blessed"]]
        lines.append(f"  eval: {shown}; {blessed}")
        changes = ", ".join(f"{k.removesuffix('_diff')} {v:+.4f}" for k, v in ev["metrics"].items()
                            if k.endswith("_diff"))
        if changes:
            lines.append(f"    vs baseline model {ev['baseline_model_id']}: {changes}")
    else:
        lines.append("  eval: not evaluated")
    lines.append("  pushed: " + (", ".join(f"{p['version']} ({p['destination']})" for p in record["pushed"])
                                 or "no"))
    for e in record["exports"]:
        lines.append(f"  export: {e['node']}.{e['output']} {e['type']} {e['uri']}")
    return "\n".join(lines)
