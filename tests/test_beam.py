"""[beam]: Beam DirectRunner in multi_processing mode gives the same data as in memory (no dropped records)."""

import subprocess
import sys

import tensorflow_data_validation as tfdv

from keel.mlmd import store as metadata

from helpers import node_states, penguin_spec

# The spec's pipeline up to SchemaGen (TFX's partial run): the data components are what [beam] changes.
DATA_COMPONENTS = r"""
import sys
from pathlib import Path
from tfx import v1 as tfx
from tfx.orchestration.pipeline import RunOptions
from keel.data.sources import prepare_source
from keel.runners.local import local_pipeline
from keel.core.spec import load_spec

spec, workdir = load_spec(sys.argv[1]), Path(sys.argv[2])
source, _ = prepare_source(spec, workdir)
tfx.orchestration.LocalDagRunner().run(local_pipeline(spec, source, workdir),
                                       run_options=RunOptions(to_nodes=["SchemaGen"]))
"""

MULTI = {"beam.direct_running_mode": "multi_processing", "beam.direct_num_workers": 2}


def data_outputs(workdir):
    """Per split: example count and per-feature (non-missing count, mean); and the schema text."""
    store = metadata.open_store(workdir)
    run = metadata.latest_run_context(store)
    nodes = {n.node_id: n for n in metadata.run_executions(store, run)}
    statistics = metadata.outputs(store, nodes["StatisticsGen"].execution.id)["statistics"][0]
    schema = metadata.outputs(store, nodes["SchemaGen"].execution.id)["schema"][0]
    summary = {}
    for split in ["train", "eval"]:
        stats = tfdv.load_stats_binary(f"{statistics.uri}/Split-{split}/FeatureStats.pb").datasets[0]
        features = {}
        for f in stats.features:
            common = f.num_stats.common_stats if f.HasField("num_stats") else f.string_stats.common_stats
            features[f.path.step[0]] = (common.num_non_missing, round(f.num_stats.mean, 6))
        summary[split] = (stats.num_examples, features)
    return summary, canonical_schema(f"{schema.uri}/schema.pbtxt")


def canonical_schema(path: str) -> str:
    """The schema's text with features and string domains in name order: SchemaGen's order of domains
    follows the order in which Beam's workers hand back statistics, which is not part of its meaning."""
    schema = tfdv.load_schema_text(path)
    features = sorted(schema.feature, key=lambda f: f.name)
    domains = sorted(schema.string_domain, key=lambda d: d.name)
    del schema.feature[:], schema.string_domain[:]
    schema.feature.extend(features)
    schema.string_domain.extend(domains)
    return str(schema)


def test_multi_processing_matches_in_memory(tmp_path, penguin_runs):
    workdir = tmp_path / "work"
    spec = penguin_spec(tmp_path, MULTI)
    result = subprocess.run(
        [sys.executable, "-c", DATA_COMPONENTS, str(spec), str(workdir)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert node_states(workdir)["StatisticsGen"] == "COMPLETE"
    in_memory, schema = data_outputs(penguin_runs.workdir)
    multi, multi_schema = data_outputs(workdir)
    assert multi == in_memory
    assert in_memory["train"][0] + in_memory["eval"][0] == 344
    assert multi_schema == schema
