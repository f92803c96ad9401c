"""The model registry over ML Metadata: stages (candidate, production, archived) and diffs between models.

- `stages`: the pushed versions, their stage transitions and the version serving should pick.
- `diff`: what changed between two models (spec, data, code, metrics), from their `Lineage`.
"""
