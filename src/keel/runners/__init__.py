"""Where a pipeline runs: this machine, or compiled for Vertex AI / Kubeflow, and the Beam options it uses.

- `local`: `run_pipeline` (preflight, prepare, execute, record) on LocalDagRunner with SQLite ML Metadata.
- `summary`: the end-of-run summary, read back from ML Metadata.
- `watch`: `keel run --watch`, re-running on every change; `changes`: what changed between its runs.
- `progress`: the console reporter of a local run; `lock`: one run per workdir.
- `cloud`: the Kubeflow v2 IR for Vertex AI Pipelines or Kubeflow Pipelines, and the Vertex Trainer.
- `beam`: the Beam pipeline options from the spec's [beam] section.
"""
