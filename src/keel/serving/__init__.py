"""`keel serve`: TF Serving's REST API over the pushed SavedModels, with micro-batching, hot reload
of newly pushed versions and PredictionLog request logs.

- `service`: what REST and gRPC share: `Models` (every served model by name, version or label),
  predicting through the shared batcher, the request log and the metrics; `ApiError` and its kinds.
- `versions`: which version to serve (the registry's production version, else the newest), the
  registry's stages as version labels, loading a version.
- `metrics`: the Prometheus metrics, on the server's own registry.
- `codec`: TF Serving's JSON request forms (`instances`, `inputs`) to tensors, and outputs back to JSON.
- `batching`: joins concurrent requests into one model call.
- `request_log`: sampled, size-rotated PredictionLog TFRecord files, the format TF Serving writes.
- `config`: `ServeConfig`, every `keel serve` setting and its default (no TensorFlow import).
- `app`: the Starlette application and `serve()`, which runs it on uvicorn.
"""
