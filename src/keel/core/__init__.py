"""What every layer shares: the typed spec, the user-facing errors, and loading the user's model code.

- `spec`: the TOML spec as frozen pydantic models; every error names the field path and value.
- `errors`: the KeelError family, reported as one line with exit code 2.
- `modules`: the user's model module, loaded by file path, and its provenance.
- `fingerprint`: sha256 of files and directories (data, code, borrowed weights).
- `quiet`: library logs kept off the console (TensorFlow's import, a run's log file).
- `workdirs`: which workdir a command acts on (--workdir, the spec's, or the only one under .keel/).

Nothing here imports TensorFlow, TFX or ML Metadata.
"""
