"""Runs a spec's pipeline on this machine: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner.

A run goes in four steps: preflight (the accelerator and the model module, before anything runs),
prepare (lock the workdir, prepare the data, recover an interrupted run), execute (the pipeline,
under a run id keel chooses) and record (provenance on the run's ML Metadata context, the summary,
the error's classification). Console output is progress only (keel.runners.progress); TFX's, Beam's
and TensorFlow's logs go to `WORKDIR/logs/run-TIMESTAMP.log`.
"""

import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

from keel.core.errors import NO_SPACE, DiskFullError, find_disk_full, find_keel_error
from keel.core.modules import load_module, require_function
from keel.core.spec import Spec
from keel.data.sources import DataSource
from keel.runners.lock import workdir_lock
from keel.runners.progress import ProgressHandler, Reporter


def local_placement(spec: Spec, workdir: Path, beam_args: list[str] | None = None):
    """Everything under `workdir`: pipeline root, SQLite ML Metadata, pushed models in serving/NAME.

    `beam_args` replaces the Beam options `[beam]` gives.
    """
    from tfx import v1 as tfx

    from keel.executors.training import workers
    from keel.executors.training.probe_cache import CUSTOM_CONFIG_KEY
    from keel.mlmd.store import store_path
    from keel.pipeline.factory import Placement
    from keel.runners.beam import beam_pipeline_args

    workdir = Path(workdir)
    return Placement(
        pipeline_root=str(workdir / "pipeline"),
        serving_root=str(workdir / "serving" / spec.pipeline.name),
        metadata=tfx.orchestration.metadata.sqlite_metadata_connection_config(str(store_path(workdir))),
        module=str(spec.resolve(spec.model.module)),
        beam_args=tuple(beam_pipeline_args(spec) if beam_args is None else beam_args),
        trainer_extra={CUSTOM_CONFIG_KEY: str(workdir / "cache" / "xla_probe")},
        trainer=workers.Trainer if spec.train.workers > 1 else tfx.components.Trainer,
        workdir=str(workdir),
    )


def local_pipeline(spec: Spec, source: DataSource, workdir: Path, beam_args: list[str] | None = None):
    """The spec's pipeline placed in `workdir` (see local_placement), ready for a LocalDagRunner."""
    from keel.pipeline.factory import create_pipeline

    return create_pipeline(spec, source, local_placement(spec, workdir, beam_args))


def _named_run_runner(run_id: str):
    """A LocalDagRunner whose pipeline run is named `run_id` in ML Metadata.

    LocalDagRunner.run_with_ir binds the pipeline-run-id runtime parameter to the time it starts.
    Bound here first, the parameter is a plain value by then and its own binding leaves it alone;
    LocalDagRunner, IrBasedRunner.run and runtime_parameter_utils are the same in TFX 1.16 and 1.21.
    """
    from tfx.dsl.compiler import constants
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    class NamedRunDagRunner(LocalDagRunner):
        def run_with_ir(self, pipeline, run_options=None):
            runtime_parameter_utils.substitute_runtime_parameter(
                pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
            )
            return super().run_with_ir(pipeline, run_options=run_options)

    return NamedRunDagRunner()


@dataclasses.dataclass(frozen=True)
class _Prepared:
    workdir: Path
    source: DataSource
    provenance: dict


@dataclasses.dataclass(frozen=True)
class _Executed:
    run_id: str
    node_ids: list[str]
    log_file: Path
    seconds: float
    cpu_seconds: dict[str, float]
    failure: Exception | None


def _preflight(spec: Spec) -> None:
    """Fails before the pipeline starts, not at its Trainer: a missing accelerator, an unimportable module."""
    from keel.executors.training.cluster import check_workers
    from keel.executors.training.strategy import check_accelerator

    check_accelerator(spec.train.accelerator, spec.train.tpu)
    check_workers(spec.train.workers, spec.train.backend, spec.train.accelerator)
    module_path = spec.resolve(spec.model.module)
    require_function(load_module(module_path), "build_model", module_path)


def _prepare(spec: Spec, workdir: Path, span: int | None, reporter: Reporter) -> _Prepared:
    """Prepares the data source and closes what an interrupted run or push left (the caller holds the lock)."""
    from keel.data.sources import prepare_source
    from keel.mlmd.doctor import remove_partial_versions
    from keel.mlmd.store import close_interrupted, open_store, store_path

    source, provenance = prepare_source(spec, workdir, span)
    reporter.start(spec.pipeline.name, workdir)
    reporter.data(spec.data.source, source, provenance)
    if spec.overrides:
        reporter.overrides(spec.overrides)
    reporter.task(spec.task, spec.metric)
    if store_path(workdir).exists():
        closed = close_interrupted(open_store(workdir))
        if closed:
            reporter.recovered(closed)
    removed = remove_partial_versions(workdir)
    if removed:
        reporter.removed_partial(removed)
    return _Prepared(workdir, source, provenance)


def _execute(pipeline, progress: ProgressHandler, log_file: Path) -> _Executed:
    """Runs the pipeline under a fresh run id; a failure is kept for `_record` to classify."""
    run_id = datetime.datetime.now().isoformat()  # the form LocalDagRunner's own ids take
    started = time.monotonic()
    failure = None
    try:
        _named_run_runner(run_id).run(pipeline)
    except Exception as e:  # classified after the summary: the user's problem, or a bug
        failure = e
    return _Executed(run_id, progress.node_ids, log_file, time.monotonic() - started, progress.cpu_seconds, failure)


def _record(spec: Spec, prepared: _Prepared, executed: _Executed):
    """Writes the run's provenance onto its pipeline_run context and reads back its summary."""
    from keel.core.modules import code_provenance
    from keel.mlmd.store import open_store, run_context, set_custom
    from keel.runners.summary import collect_summary

    store = open_store(prepared.workdir)
    run = run_context(store, executed.run_id)
    if run is not None:
        set_custom(
            store,
            run,
            {
                "keel_spec": json.dumps(spec.resolved(), sort_keys=True),
                "keel_spec_path": str(spec.path),
                "keel_spec_sha256": spec.sha256(),
                "keel_spec_overrides": json.dumps(spec.overrides),  # in command-line order
                "keel_data": json.dumps(prepared.provenance, sort_keys=True),
                "keel_code": json.dumps(code_provenance(spec.resolve(spec.model.module)), sort_keys=True),
                "keel_cpu_seconds": json.dumps(executed.cpu_seconds, sort_keys=True),
                "keel_seconds": f"{executed.seconds:.3f}",  # wall time, read by `keel runs`
            },
        )
    return collect_summary(
        store, run, spec.pipeline.name, executed.node_ids, prepared.workdir, executed.seconds, executed.log_file
    )


def _raise_failure(failure: Exception, log_file: Path, summary):
    """The user-facing KeelError inside `failure` (a full disk is one), or a RuntimeError (a bug) that
    names the log file."""
    keel_error = find_keel_error(failure)
    full = find_disk_full(failure) if keel_error is None else None
    if full is not None:
        failed = [c.node_id for c in summary.components if c.status == "failed"]
        where = f" writing {full[1]}" if full[1] else ""
        raise DiskFullError(
            f"{', '.join(failed) or 'the run'}: the disk is full ({NO_SPACE}{where}): free space there and run again; "
            "what finished is cached, and nothing this run left half-written is used"
        ) from failure
    if keel_error is None:
        raise RuntimeError(
            f"keel run failed unexpectedly: {failure.__class__.__name__}: {failure}; full log: {log_file}"
        ) from failure
    raise keel_error


def run_pipeline(spec: Spec, workdir: Path | None = None, out=None, span: int | None = None):
    """Runs the spec's pipeline in `workdir` (default `.keel/<name>` beside the spec).

    `span` picks the data version of a `{SPAN}` source (default: the latest span).

    Returns the RunSummary. Raises KeelError (user-facing, one line) for bad input or data; other
    exceptions are bugs and carry the log file's path in their message.
    """
    from keel.core.quiet import library_logs_to

    _preflight(spec)
    reporter = Reporter(out or sys.stdout)
    workdir = Path(workdir or spec.default_workdir()).resolve()
    with workdir_lock(workdir):
        prepared = _prepare(spec, workdir, span, reporter)
        pipeline = local_pipeline(spec, prepared.source, workdir)
        progress = ProgressHandler([c.id for c in pipeline.components], reporter)
        (workdir / "logs").mkdir(exist_ok=True)
        log_file = workdir / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
        with library_logs_to(log_file, progress):
            executed = _execute(pipeline, progress, log_file)
            summary = _record(spec, prepared, executed)
        if executed.failure is not None:
            reporter.summary(summary.render())
            _raise_failure(executed.failure, log_file, summary)
        return summary
