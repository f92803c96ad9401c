"""`keel serve`: TF Serving's REST API over the pushed SavedModels, with micro-batching, hot reload
of newly pushed versions and PredictionLog request logs.

- `versions`: which version to serve (the registry's production version, else the newest), loading it.
- `codec`: TF Serving's JSON request forms (`instances`, `inputs`) to tensors, and outputs back to JSON.
- `batching`: joins concurrent requests into one model call.
- `request_log`: sampled, size-rotated PredictionLog TFRecord files, the format TF Serving writes.
- `config`: `ServeConfig`, every `keel serve` setting and its default (no TensorFlow import).
- `app`: the Starlette application and `serve()`, which runs it on uvicorn.
"""
