"""The `keel` command: thin adapters over the library, one call each.

The library validates and raises KeelError; main() prints it as `error: ...` lines and exits 2.
The workdir rule and every exit code are in EPILOG (`keel --help`). Building the parser imports
no TensorFlow: choices and defaults come from light modules (spec, registry stages, cloud targets,
serve config).
"""

import argparse
import sys

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT, EXIT_ALERTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = f"""\
workdir: the directory `keel run` writes (pipeline root, ML Metadata, serving/, logs/). Every command
picks it the same way (keel.core.workdirs): --workdir DIR when given; else the spec's own workdir,
.keel/NAME beside the spec, when a spec is given (the SPEC argument, or --spec); else the one workdir
under .keel/ in the current directory or one directory down (pipelines/.keel/NAME after `make demo`).
When that search finds several, pass --workdir or --spec.

exit codes:
  {EXIT_OK}    success
  {EXIT_BUG}    an unexpected failure (a bug in keel): a traceback, and the run's log file if there is one
  {EXIT_BAD_INPUT}    bad input (flags, spec, data, model code, workdir): one line per problem, "error: ..."
  {EXIT_ALERTS}    keel monitor: the logged requests raised alerts
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
"""


def _add_set(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key without editing the file, e.g. --set train.steps=800 "
        "--set model.hparams.learning_rate=0.02 (a TOML value; repeatable; recorded with the run)",
    )


def _workdir(args):
    """The workdir a command acts on, by the rule in EPILOG; `args.spec` is a spec path or None."""
    from keel.core.workdirs import resolve_workdir

    spec = None
    if args.spec:
        from keel.core.spec import load_spec

        spec = load_spec(args.spec, check_files=False)
    return resolve_workdir(args.workdir, spec)


def _emit(data, text: str, as_json: bool) -> None:
    """Prints `text`, or `data` as JSON (paths as strings) with --json."""
    import json

    print(json.dumps(data, indent=2, sort_keys=True, default=str) if as_json else text)


def cmd_validate(args) -> int:
    from keel.core.spec import load_spec, parse_overrides, to_toml

    spec = load_spec(args.spec, overrides=parse_overrides(args.overrides))
    print(f"# {spec.path}: valid; every default filled in")
    print(to_toml(spec.resolved()), end="")
    return EXIT_OK


def cmd_run(args) -> int:
    import contextlib
    import dataclasses

    from keel.core.spec import load_spec, parse_overrides
    from keel.core.workdirs import resolve_workdir
    from keel.runners.local import run_pipeline

    if args.watch:
        return _watch(args)
    spec = load_spec(args.spec, overrides=parse_overrides(args.overrides))
    workdir = resolve_workdir(args.workdir, spec)
    # With --json, stdout carries only the summary: progress (the runner's and the Trainer's) goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        summary = run_pipeline(spec, workdir=workdir, span=args.span)
    _emit(dataclasses.asdict(summary), summary.render(), args.json)
    return EXIT_OK


def _watch(args) -> int:
    from keel.core.errors import KeelError
    from keel.core.spec import parse_overrides
    from keel.runners.watch import ABORTED, Watcher

    if args.json:
        raise KeelError("--watch prints text after each run; drop --json (keel runs --json lists the runs)")
    outcome = Watcher(args.spec, parse_overrides(args.overrides), args.workdir, args.span).run()
    return EXIT_INTERRUPTED if outcome == ABORTED else EXIT_OK


def cmd_serve(args) -> int:
    from pathlib import Path

    from keel.core.errors import ServingError
    from keel.core.spec import load_spec
    from keel.core.workdirs import resolve_workdir
    from keel.serving.app import serve
    from keel.serving.config import ServeConfig

    if args.model_config_file and (args.workdir or args.spec):
        raise ServingError("--model-config-file names every model to serve; drop --workdir and --spec")
    workdirs = tuple(Path(w) for w in args.workdir)
    if not workdirs and not args.model_config_file:
        workdirs = (resolve_workdir(None, load_spec(args.spec, check_files=False) if args.spec else None),)
    serve(
        ServeConfig(
            workdir=workdirs[0] if workdirs else None,
            workdirs=workdirs,
            model_config_file=Path(args.model_config_file) if args.model_config_file else None,
            model=args.model,
            host=args.host,
            port=args.port,
            grpc_port=args.grpc_port,
            log_dir=Path(args.log_dir) if args.log_dir else None,
            log_sample_rate=args.log_sample_rate,
            log_max_bytes=args.log_max_bytes,
            max_batch_size=args.max_batch_size,
            batch_wait_ms=args.batch_wait_ms,
            max_body_bytes=args.max_body_bytes,
            poll_seconds=args.poll_seconds,
            monitor_every=args.monitor_every,
        )
    )
    return EXIT_OK


def cmd_monitor(args) -> int:
    from pathlib import Path

    from keel.monitoring import monitor, monitor_windows

    if (args.window or args.follow) and (args.since or args.labels):
        from keel.monitoring.logs import LogError

        flag = "--since" if args.since else "--labels"
        raise LogError(f"{flag}: judges a single window; drop it with --window or --follow")
    if args.follow:
        from keel.monitoring.follow import follow

        return follow(_workdir(args), Path(args.logs), Path(args.out), args.window or "1h", args.model)
    if args.window:
        report = monitor_windows(_workdir(args), Path(args.logs), Path(args.out), args.window, args.model)
        _emit(report.to_dict(), report.render(), args.json)
        return EXIT_ALERTS if report.alerts else EXIT_OK
    report = monitor(
        _workdir(args),
        Path(args.logs),
        Path(args.out),
        version=args.model,
        since=args.since,
        labels=Path(args.labels) if args.labels else None,
    )
    _emit(report.to_dict(), report.render(), args.json)
    return EXIT_ALERTS if report.alerts else EXIT_OK


def cmd_logs_export(args) -> int:
    from pathlib import Path

    from keel.core.spec import load_spec
    from keel.core.workdirs import resolve_workdir
    from keel.monitoring.export_span import export_span

    spec = load_spec(args.spec, check_files=False)
    exported = export_span(
        spec,
        resolve_workdir(args.workdir, spec),
        Path(args.logs),
        args.span,
        labels=Path(args.labels) if args.labels else None,
        version=args.model,
        since=args.since,
        until=args.until,
    )
    _emit(exported.to_dict(), exported.render(), args.json)
    return EXIT_OK


def cmd_lineage(args) -> int:
    from keel.mlmd.lineage import model_lineage, render

    record = model_lineage(_workdir(args), args.model)
    _emit(record.to_dict(), render(record), args.json)
    return EXIT_OK


def cmd_runs(args) -> int:
    from keel.registry import runs

    workdir = _workdir(args)
    found = runs.list_runs(workdir)
    _emit([r.to_dict() for r in found], runs.render(found, workdir), args.json)
    if args.plot:
        from keel.registry.plot import write_plot

        metric, count = write_plot(found, args.plot)
        print(f"plot: {args.plot} ({metric} of {count} run(s))", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def cmd_models(args) -> int:
    from keel.registry import stages as registry

    workdir = _workdir(args)
    if args.action == "list":
        rows = registry.list_versions(workdir)
        _emit([r.to_dict() for r in rows], registry.render_list(rows), args.json)
    elif args.action == "show":
        entry = registry.show(workdir, args.version)
        _emit(entry.to_dict(), registry.render_entry(entry), args.json)
    elif args.action == "promote":
        version = registry.promote(workdir, args.version, args.to)
        _emit(
            {"version": version.version, "stage": version.stage},
            f"version {version.version} (#{version.index}) is now {version.stage}",
            args.json,
        )
    else:
        old, new = registry.rollback(workdir)
        _emit(
            {"from": old.version, "to": new.version},
            f"rolled back: version {new.version} (#{new.index}) is production again; "
            f"{old.version} (#{old.index}) archived",
            args.json,
        )
    return EXIT_OK


def cmd_diff(args) -> int:
    from keel.registry.diff import diff, render

    result = diff(_workdir(args), args.a, args.b)
    _emit(result, render(result), args.json)
    return EXIT_OK


def cmd_export(args) -> int:
    from pathlib import Path

    from keel.core.errors import ExportError
    from keel.core.workdirs import resolve_workdir
    from keel.export import standalone
    from keel.export.report import table

    out = Path(args.out) if args.out else None
    if args.target.endswith(".toml"):
        from keel.core.spec import load_spec

        spec = load_spec(args.target)
        result = standalone.export_spec(spec, resolve_workdir(args.workdir, spec), args.variants, out)
    elif args.workdir:
        raise ExportError(
            f"--workdir: only with a spec; a SavedModel directory ({args.target}) is measured on --examples DIR"
        )
    else:
        result = standalone.export_saved_model(Path(args.target), args.examples, args.variants, out, args.label)
    _emit(
        result.to_dict(),
        f"{table(result.reference, result.variants)}\nexported {result.chosen.name}: {result.directory}",
        args.json,
    )
    return EXIT_OK


def cmd_doctor(args) -> int:
    from keel.mlmd.doctor import doctor

    report = doctor(_workdir(args))
    if args.json:
        _emit(report.to_dict(), "", True)
    elif report.problems:
        for problem in report.problems:
            print(f"error: {problem}", file=sys.stderr)
    else:
        print(report.render())
    return EXIT_BAD_INPUT if report.problems else EXIT_OK


def cmd_compile(args) -> int:
    from keel.core.spec import load_spec
    from keel.runners.cloud import compile_pipeline

    spec = load_spec(args.spec, check_files=False)
    output = compile_pipeline(spec, args.target, args.output)
    print(f"compiled {spec.pipeline.name} for {args.target}: {output}")
    return EXIT_OK


def version_line() -> str:
    """keel's version and the stack's, read from package metadata (TensorFlow is not imported)."""
    import platform
    from importlib import metadata

    import keel

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"keel {keel.__version__} (TFX {installed('tfx')}, TensorFlow {installed('tensorflow')}, "
        f"Keras {installed('keras')}, Python {platform.python_version()})"
    )


class _VersionAction(argparse.Action):
    """`--version`: computed only when asked for, so other commands do not pay for the metadata reads."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="print the versions of keel, TFX, TensorFlow, Keras and Python, and exit",
        )

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit(EXIT_OK)


def _shared_options() -> dict[str, argparse.ArgumentParser]:
    """The options several commands take, each defined once, as argparse parent parsers."""
    workdir = argparse.ArgumentParser(add_help=False)
    workdir.add_argument(
        "--workdir",
        metavar="DIR",
        default=None,
        help="the workdir to use (default: the spec's .keel/NAME, else the only workdir under "
        ".keel/ here or one directory down; see `keel --help`)",
    )
    spec = argparse.ArgumentParser(add_help=False)
    spec.add_argument(
        "--spec", metavar="SPEC", default=None, help="a pipeline spec: use its workdir, .keel/NAME beside it"
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON on stdout instead of text")
    return {"workdir": workdir, "spec": spec, "json": as_json}


def build_parser() -> argparse.ArgumentParser:
    """The `keel` argument parser; importing what it needs for choices and defaults does not load TensorFlow."""
    from keel.core.spec import LITE_VARIANTS
    from keel.registry.stages import PRODUCTION, STAGES
    from keel.runners.cloud import TARGETS
    from keel.serving.config import DEFAULTS as SERVE

    shared = _shared_options()
    located = [shared["workdir"], shared["spec"]]  # commands without a SPEC argument
    parser = argparse.ArgumentParser(
        prog="keel",
        description="Production ML on the real TensorFlow stack.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check a spec and print it with defaults filled in")
    validate.add_argument("spec", help="path of a pipeline spec (pipelines/*.toml)")
    _add_set(validate)
    validate.set_defaults(func=cmd_validate)

    run = commands.add_parser(
        "run", parents=[shared["workdir"], shared["json"]], help="run the spec's TFX pipeline locally (cached)"
    )
    run.add_argument("spec", help="path of a pipeline spec (pipelines/*.toml)")
    run.add_argument("--span", type=int, default=None, help="data version of a {SPAN} source (default: the latest)")
    run.add_argument(
        "--watch",
        action="store_true",
        help="stay running: run again whenever the spec, the model module or the data files change, and "
        "print what changed and the metric against the previous run and the blessed baseline (Ctrl-C stops)",
    )
    _add_set(run)
    run.set_defaults(func=cmd_run)

    compile_ = commands.add_parser("compile", help="compile the pipeline for Vertex AI or Kubeflow (offline)")
    compile_.add_argument("spec", help="path of a pipeline spec with a [cloud] section")
    compile_.add_argument(
        "--target",
        choices=TARGETS,
        default=TARGETS[0],
        help=f"the orchestrator the JSON is for (default: {TARGETS[0]})",
    )
    compile_.add_argument(
        "--output", default="pipeline.json", help="where the pipeline JSON goes (default: %(default)s)"
    )
    compile_.set_defaults(func=cmd_compile)

    serve = commands.add_parser(
        "serve", parents=[shared["spec"]], help="serve the pushed models over TF Serving's REST and gRPC APIs"
    )
    serve.add_argument(
        "--workdir",
        metavar="DIR",
        action="append",
        default=[],
        help="a workdir whose pushed model to serve; repeat it to serve several models (default: the spec's "
        ".keel/NAME, else the only workdir under .keel/ here or one directory down)",
    )
    serve.add_argument(
        "--model-config-file",
        metavar="FILE",
        default=SERVE.model_config_file,
        help="TF Serving's model config (model_config_list { config { name base_path } }), instead of --workdir",
    )
    serve.add_argument("--model", default=SERVE.model, help="model name under WORKDIR/serving (default: the only one)")
    serve.add_argument("--host", default=SERVE.host, help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port",
        type=int,
        default=SERVE.port,
        help="port (default: %(default)s, TF Serving's REST port; 0 picks a free one)",
    )
    serve.add_argument(
        "--grpc-port",
        type=int,
        default=SERVE.grpc_port,
        help="gRPC port (default: %(default)s, TF Serving's gRPC port; 0 picks a free one, -1 turns gRPC off)",
    )
    serve.add_argument(
        "--log-dir",
        metavar="DIR",
        default=SERVE.log_dir,
        help="PredictionLog request logs (default: WORKDIR/request_logs/NAME)",
    )
    serve.add_argument(
        "--log-sample-rate",
        type=float,
        default=SERVE.log_sample_rate,
        help="share of requests logged (default: %(default)s; 0: off)",
    )
    serve.add_argument(
        "--log-max-bytes",
        type=int,
        default=SERVE.log_max_bytes,
        help="rotate log files at this size (default: %(default)s, 64 MiB)",
    )
    serve.add_argument(
        "--max-batch-size",
        type=int,
        default=SERVE.max_batch_size,
        help="rows per model call (default: %(default)s; 1: no batching)",
    )
    serve.add_argument(
        "--batch-wait-ms",
        type=float,
        default=SERVE.batch_wait_ms,
        help="longest wait for a batch to fill (default: %(default)s)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=SERVE.max_body_bytes,
        help="request body limit (default: %(default)s, 4 MiB)",
    )
    serve.add_argument(
        "--poll-seconds",
        type=float,
        default=SERVE.poll_seconds,
        help="how often to look for a new version (default: %(default)s)",
    )
    serve.add_argument(
        "--monitor-every",
        type=float,
        metavar="SECONDS",
        default=SERVE.monitor_every,
        help="run `keel monitor --follow` beside the server with windows of SECONDS, writing LOG_DIR/monitor/ "
        "(default: off)",
    )
    serve.set_defaults(func=cmd_serve)

    monitor = commands.add_parser(
        "monitor",
        parents=[*located, shared["json"]],
        help="skew and drift of logged requests vs the model's training data",
    )
    monitor.add_argument("--logs", metavar="DIR", required=True, help="a directory of PredictionLog TFRecord files")
    monitor.add_argument("--model", default=None, help="model version to monitor (default: the newest in the logs)")
    monitor.add_argument(
        "--since",
        default=None,
        help="ISO time: monitor requests from then on; earlier ones are the previous window (drift)",
    )
    monitor.add_argument(
        "--window",
        default=None,
        help="split the logs into consecutive windows: a duration (90s, 15m, 1h, 1d) or a row count (500); "
        "each is judged against training and the window before",
    )
    monitor.add_argument(
        "--follow",
        action="store_true",
        help="keep reading new log records; print one JSON line per window (--window, default 1h) and per alert; "
        "stops on SIGTERM or SIGINT",
    )
    monitor.add_argument("--labels", metavar="CSV", default=None, help="CSV of request_id,label for live accuracy")
    monitor.add_argument(
        "--out", metavar="DIR", default="monitor", help="where report.html and report.json go (default: ./%(default)s)"
    )
    monitor.set_defaults(func=cmd_monitor)

    logs = commands.add_parser("logs", help="request logs: turn them into training data")
    logs_actions = logs.add_subparsers(dest="action", required=True, metavar="ACTION")
    export_logs = logs_actions.add_parser(
        "export",
        parents=[shared["workdir"], shared["json"]],
        help="write logged requests, joined with their labels, as a new span of the spec's {SPAN} CSV source",
    )
    export_logs.add_argument("--logs", metavar="DIR", required=True, help="a directory of PredictionLog TFRecord files")
    export_logs.add_argument(
        "--spec", metavar="SPEC", required=True, help="the pipeline spec whose data.source gets the span"
    )
    export_logs.add_argument("--span", type=int, required=True, help="the new span's number (never overwritten)")
    export_logs.add_argument(
        "--labels", metavar="CSV", default=None, help="CSV of request_id,label; rows without a label are dropped"
    )
    export_logs.add_argument("--model", default=None, help="only this model version's requests (default: all)")
    export_logs.add_argument("--since", default=None, help="ISO time: requests from then on")
    export_logs.add_argument("--until", default=None, help="ISO time: requests before then")
    export_logs.set_defaults(func=cmd_logs_export)

    queries = [*located, shared["json"]]  # the ML Metadata queries
    lineage = commands.add_parser("lineage", parents=queries, help="what produced a model, from ML Metadata")
    lineage.add_argument(
        "model", nargs="?", default="latest", help="a pushed version, a run id, an artifact id, or latest (default)"
    )
    lineage.set_defaults(func=cmd_lineage)

    runs = commands.add_parser(
        "runs", parents=queries, help="every pipeline run: time, what ran, spec changes, hparams, metrics, push"
    )
    runs.add_argument(
        "--plot", metavar="OUT.svg", default=None, help="also draw the judged metric per run, blessed runs marked"
    )
    runs.set_defaults(func=cmd_runs)

    models = commands.add_parser("models", help="the registry of pushed versions and their stages")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=queries, help="every pushed version with its stage and metrics")
    show = actions.add_parser("show", parents=queries, help="one version: stage, metrics, lineage")
    show.add_argument("version", help="a version (directory name under serving/) or its registry index")
    promote = actions.add_parser("promote", parents=queries, help="move a version to a stage (default: production)")
    promote.add_argument("version", help="a version (directory name under serving/) or its registry index")
    promote.add_argument(
        "--to",
        default=PRODUCTION,
        choices=STAGES,
        help=f"the stage (default: %(default)s; promoting to {PRODUCTION} archives the current one)",
    )
    actions.add_parser("rollback", parents=queries, help="put the previously promoted version back in production")
    models.set_defaults(func=cmd_models)

    diff = commands.add_parser("diff", parents=queries, help="what changed between two models")
    diff.add_argument("a", help="a pushed version, a run id, a registry index, or latest")
    diff.add_argument("b", help="a pushed version, a run id, a registry index, or latest")
    diff.set_defaults(func=cmd_diff)

    doctor = commands.add_parser(
        "doctor",
        parents=queries,
        help="check a workdir: its ML Metadata store, the artifacts it lists, the pushed versions",
    )
    doctor.set_defaults(func=cmd_doctor)

    export = commands.add_parser(
        "export",
        parents=[shared["workdir"], shared["json"]],
        help="convert a pushed model to LiteRT, gated on parity with the SavedModel",
    )
    export.add_argument("target", help="a pipeline spec (its workdir's latest pushed model) or a SavedModel directory")
    export.add_argument(
        "--examples",
        metavar="DIR",
        default=None,
        help="with a SavedModel: an ExampleGen output directory (Split-train, Split-eval)",
    )
    export.add_argument(
        "--variants",
        nargs="+",
        choices=LITE_VARIANTS,
        default=None,
        help="variants to build (default: the spec's [export.lite] variants, or all)",
    )
    export.add_argument("--label", default=None, help="with a SavedModel: the label column (default: inferred)")
    export.add_argument(
        "--out", metavar="DIR", default=None, help="output directory (default: lite/ inside the pushed version)"
    )
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one `keel` command; returns its exit code (listed in EPILOG)."""
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
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
