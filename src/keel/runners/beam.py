"""Beam pipeline options from the spec's [beam] section, for every Beam-based TFX component."""

from keel.core.spec import Spec


def beam_pipeline_args(spec: Spec) -> list[str]:
    """The Beam options the data components (ExampleGen, StatisticsGen, Transform, Evaluator) run with."""
    beam = spec.beam
    args = [f"--runner={beam.runner}"]
    if beam.runner == "DirectRunner":
        args += [f"--direct_running_mode={beam.direct_running_mode}", f"--direct_num_workers={beam.direct_num_workers}"]
    if beam.runner == "DataflowRunner" and spec.cloud.project:
        args += [f"--project={spec.cloud.project}", f"--region={spec.cloud.region}"]
        if spec.cloud.pipeline_root and not any(a.startswith("--temp_location") for a in beam.args):
            args.append(f"--temp_location={spec.cloud.pipeline_root.rstrip('/')}/beam-tmp")
    return args + list(beam.args)
