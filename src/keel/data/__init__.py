"""The data a spec names, before any TFX component sees it.

- `sources`: `data.source` resolved to the files ExampleGen reads, `{SPAN}` data versions, and the
  provenance (files, rows, sha256) recorded with each run.
- `datasets`: the builtin datasets that ship inside installed packages (penguins, taxi, digits, ...).
- `features`: the FeatureSet `build_model` receives, and feature kinds from dtypes.
"""
