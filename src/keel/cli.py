"""The `keel` command: thin adapters over the library. Errors in user input exit 2 with one line."""

import argparse
import os
import sys
import warnings


def _quiet_libraries() -> None:
    # TensorFlow's C++ start-up chatter and google-cloud's Python-version notices are not the user's concern.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def cmd_validate(args) -> int:
    from keel.spec import load_spec, to_toml

    spec = load_spec(args.spec)
    print(f"# {spec.path}: valid; every default filled in")
    print(to_toml(spec.resolved()), end="")
    return 0


def cmd_run(args) -> int:
    from keel.runners.local import run_pipeline
    from keel.spec import load_spec

    spec = load_spec(args.spec)
    summary = run_pipeline(spec, workdir=args.workdir)
    print(summary.render())
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
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    from keel.errors import KeelError

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
