"""ML Metadata, read one way: the workdir's store, graph walks over events, lineage and evaluations.

- `store`: opening a workdir's SQLite store, custom properties, inputs/outputs/producer/consumers.
- `lineage`: from a model artifact back to its data, code and run, forward to its evaluation and pushes.
- `training_data`: the schema and training statistics behind a pushed version (what monitoring compares).
"""
