"""ML Metadata, read one way: the workdir's store, graph walks over events, lineage and evaluations.

- `store`: opening a workdir's SQLite store, custom properties, and every graph walk (runs, node ids,
  inputs/outputs/producer/consumers by key); nodes are named by `keel.pipeline.nodes`.
- `evaluation`: the one reader of the Evaluator's output (overall-slice metrics, blessing, its reasons).
- `lineage`: the typed `Lineage` of a model: back to its data, code and run, forward to its evaluation,
  pushes and exports.
- `training_data`: the schema and training statistics behind a pushed version (what monitoring compares).
- `text`: how recorded numbers, digests and times read in text output.
"""
