"""The model registry over ML Metadata: stages (candidate, production, archived), diffs between models, runs.

- `stages`: the pushed versions, their stage transitions and the version serving should pick.
- `diff`: what changed between two models (spec, data, code, metrics), from their `Lineage`.
- `runs`: every pipeline run of a workdir: what ran and was cached, spec changes, hparams, metrics, push.
"""
