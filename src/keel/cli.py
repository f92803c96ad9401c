"""The `keel` command: thin adapters over the library. Errors in user input exit 2 with one line."""

import argparse
import sys


def cmd_validate(args) -> int:
    from keel.core.spec import load_spec, to_toml

    spec = load_spec(args.spec)
    print(f"# {spec.path}: valid; every default filled in")
    print(to_toml(spec.resolved()), end="")
    return 0


def cmd_run(args) -> int:
    from keel.runners.local import run_pipeline
    from keel.core.spec import load_spec

    spec = load_spec(args.spec)
    summary = run_pipeline(spec, workdir=args.workdir, span=args.span)
    print(summary.render())
    return 0


def cmd_serve(args) -> int:
    from pathlib import Path

    from keel.serving.app import ServeConfig, serve

    serve(ServeConfig(workdir=Path(args.workdir), model=args.model, host=args.host, port=args.port,
                      log_dir=args.log_dir, log_sample_rate=args.log_sample_rate, log_max_bytes=args.log_max_bytes,
                      max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms,
                      max_body_bytes=args.max_body_bytes, poll_seconds=args.poll_seconds))
    return 0


def cmd_monitor(args) -> int:
    from pathlib import Path

    from keel.monitoring import monitor

    report = monitor(Path(args.workdir), Path(args.logs), Path(args.out), version=args.model, since=args.since,
                     labels=Path(args.labels) if args.labels else None)
    print(report.render())
    return 3 if report.alerts else 0


def _emit(data, text: str, as_json: bool) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


def cmd_lineage(args) -> int:
    from pathlib import Path

    from keel.mlmd.lineage import model_lineage, render

    record = model_lineage(Path(args.workdir), args.model)
    _emit(record, render(record), args.json)
    return 0


def cmd_models(args) -> int:
    from pathlib import Path

    from keel.mlmd import lineage
    from keel.registry import stages as registry

    workdir = Path(args.workdir)
    if args.action == "list":
        rows = registry.list_versions(workdir)
        _emit(rows, registry.render_list(rows), args.json)
    elif args.action == "show":
        entry = registry.show(workdir, args.version)
        text = f"version {entry['version']} (#{entry['index']}): {entry['stage']}\n{lineage.render(entry['lineage'])}"
        _emit(entry, text, args.json)
    elif args.action == "promote":
        version = registry.promote(workdir, args.version, args.to)
        _emit({"version": version.version, "stage": version.stage},
              f"version {version.version} (#{version.index}) is now {version.stage}", args.json)
    else:
        old, new = registry.rollback(workdir)
        _emit({"from": old.version, "to": new.version},
              f"rolled back: version {new.version} (#{new.index}) is production again; "
              f"{old.version} (#{old.index}) archived", args.json)
    return 0


def cmd_diff(args) -> int:
    from pathlib import Path

    from keel.registry.diff import diff, render

    result = diff(Path(args.workdir), args.a, args.b)
    _emit(result, render(result), args.json)
    return 0


def cmd_export(args) -> int:
    from pathlib import Path

    from keel.export import standalone

    out = Path(args.out) if args.out else None
    if args.target.endswith(".toml"):
        from keel.core.spec import load_spec

        result = standalone.export_spec(load_spec(args.target), args.workdir, args.variants, out)
    else:
        result = standalone.export_saved_model(Path(args.target), args.examples, args.variants, out, args.label)
    from keel.export.report import table

    print(table(result.reference, result.variants))
    print(f"exported {result.chosen.name}: {result.directory}")
    return 0


def cmd_compile(args) -> int:
    from keel.runners.cloud import compile_pipeline
    from keel.core.spec import load_spec

    spec = load_spec(args.spec, check_files=False)
    output = compile_pipeline(spec, args.target, args.output)
    print(f"compiled {spec.pipeline.name} for {args.target}: {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keel", description="Production ML on the real TensorFlow stack.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check a spec and print it with defaults filled in")
    validate.add_argument("spec", help="path of a pipeline spec (pipelines/*.toml)")
    validate.set_defaults(func=cmd_validate)

    run = commands.add_parser("run", help="run the spec's TFX pipeline locally (cached)")
    run.add_argument("spec", help="path of a pipeline spec (pipelines/*.toml)")
    run.add_argument("--workdir", default=None, help="pipeline root and ML Metadata (default: .keel/NAME beside the spec)")
    run.add_argument("--span", type=int, default=None, help="data version of a {SPAN} source (default: the latest)")
    run.set_defaults(func=cmd_run)

    compile_ = commands.add_parser("compile", help="compile the pipeline for Vertex AI or Kubeflow (offline)")
    compile_.add_argument("spec", help="path of a pipeline spec with a [cloud] section")
    compile_.add_argument("--target", choices=["vertex", "kubeflow"], default="vertex")
    compile_.add_argument("--output", default="pipeline.json", help="where the pipeline JSON goes")
    compile_.set_defaults(func=cmd_compile)

    serve = commands.add_parser("serve", help="serve the pushed model over TF Serving's REST API")
    serve.add_argument("--workdir", default=".", help="the workdir `keel run` pushed to (default: .)")
    serve.add_argument("--model", default=None, help="model name under WORKDIR/serving (default: the only one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8501, help="port (default: 8501, TF Serving's REST port; 0 picks one)")
    serve.add_argument("--log-dir", default=None, help="PredictionLog request logs (default: WORKDIR/request_logs/NAME)")
    serve.add_argument("--log-sample-rate", type=float, default=1.0, help="share of requests logged (default: 1; 0: off)")
    serve.add_argument("--log-max-bytes", type=int, default=64 << 20, help="rotate log files at this size")
    serve.add_argument("--max-batch-size", type=int, default=64, help="rows per model call (default: 64; 1: no batching)")
    serve.add_argument("--batch-wait-ms", type=float, default=2.0, help="longest wait for a batch to fill (default: 2)")
    serve.add_argument("--max-body-bytes", type=int, default=4 << 20, help="request body limit (default: 4 MiB)")
    serve.add_argument("--poll-seconds", type=float, default=2.0, help="how often to look for a new version")
    serve.set_defaults(func=cmd_serve)

    monitor = commands.add_parser("monitor", help="skew and drift of logged requests vs the model's training data")
    monitor.add_argument("--workdir", default=".", help="the workdir the served model came from (default: .)")
    monitor.add_argument("--logs", required=True, help="a directory of PredictionLog TFRecord files")
    monitor.add_argument("--model", default=None, help="model version to monitor (default: the newest in the logs)")
    monitor.add_argument("--since", default=None,
                         help="ISO time: monitor requests from then on; earlier ones are the previous window (drift)")
    monitor.add_argument("--labels", default=None, help="CSV of request_id,label for live accuracy")
    monitor.add_argument("--out", default="monitor", help="where report.html and report.json go (default: ./monitor)")
    monitor.set_defaults(func=cmd_monitor)

    # Options shared by the ML Metadata queries.
    query = argparse.ArgumentParser(add_help=False)
    query.add_argument("--workdir", default=".", help="the workdir of `keel run` (default: .)")
    query.add_argument("--json", action="store_true", help="print JSON instead of text")

    lineage = commands.add_parser("lineage", parents=[query], help="what produced a model, from ML Metadata")
    lineage.add_argument("model", nargs="?", default="latest",
                         help="a pushed version, a run id, an artifact id, or latest (default)")
    lineage.set_defaults(func=cmd_lineage)

    models = commands.add_parser("models", help="the registry of pushed versions and their stages")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[query], help="every pushed version with its stage and metrics")
    show = actions.add_parser("show", parents=[query], help="one version: stage, metrics, lineage")
    show.add_argument("version", help="a version (directory name under serving/) or its registry index")
    promote = actions.add_parser("promote", parents=[query], help="move a version to a stage (default: production)")
    promote.add_argument("version", help="a version (directory name under serving/) or its registry index")
    promote.add_argument("--to", default="production", choices=["production", "candidate", "archived"])
    actions.add_parser("rollback", parents=[query], help="put the previously promoted version back in production")
    models.set_defaults(func=cmd_models)

    diff = commands.add_parser("diff", parents=[query], help="what changed between two models")
    diff.add_argument("a", help="a pushed version, a run id, a registry index, or latest")
    diff.add_argument("b", help="a pushed version, a run id, a registry index, or latest")
    diff.set_defaults(func=cmd_diff)

    export = commands.add_parser("export", help="convert a pushed model to LiteRT, gated on parity with the SavedModel")
    export.add_argument("target", help="a pipeline spec (its workdir's latest pushed model) or a SavedModel directory")
    export.add_argument("--workdir", default=None, help="with a spec: its workdir (default: .keel/NAME beside it)")
    export.add_argument("--examples", default=None,
                        help="with a SavedModel: an ExampleGen output directory (Split-train, Split-eval)")
    export.add_argument("--variants", nargs="+", choices=["float32", "float16", "dynamic", "int8"], default=None,
                        help="variants to build (default: the spec's [export.lite] variants, or all)")
    export.add_argument("--label", default=None, help="with a SavedModel: the label column (default: inferred)")
    export.add_argument("--out", default=None, help="output directory (default: lite/ inside the pushed version)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from keel.core import quiet

    quiet.quiet_process()
    args = build_parser().parse_args(argv)
    if args.func is not cmd_validate:  # the one command that never loads TensorFlow
        quiet.import_tensorflow_quietly()
    from keel.core.errors import KeelError

    try:
        return args.func(args)
    except KeelError as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
