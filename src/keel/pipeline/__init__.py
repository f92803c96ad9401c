"""The TFX pipeline a spec describes: built by one pure factory, configured by typed objects.

- `factory`: `create_pipeline(spec, source, placement)` wires the DAG; runners decide where it runs.
- `config`: the typed config each component gets, built once from the spec, read back by its executor.
- `nodes`: the node id of every component.
- `components/`: keel's own TFX components (DataGate, the baseline resolver, LiteExporter).

Code that runs inside the executors (the Trainer's run_fn, the Transform's preprocessing_fn) lives
in `keel.executors`; the factory refers to it by name.
"""
