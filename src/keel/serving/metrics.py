"""The server's Prometheus metrics, on a registry of its own (never prometheus_client's global one).

    keel_serving_requests_total{model, version, signature, api, status}         every answered predict
    keel_serving_request_errors_total{model, version, signature, api, status}   those not answered OK
    keel_serving_request_latency_seconds{model, version, signature, api}        time to answer (histogram)
    keel_serving_batch_size_rows{model, version, signature}                     rows per model call (histogram)
    keel_serving_request_log_queued_total{model}                                records queued for the request log
    keel_serving_request_log_written_total{model}                               records the log writer wrote

`api` is `rest` or `grpc`; `status` is the gRPC status code name TF Serving answers with (`OK`, `NOT_FOUND`,
`INVALID_ARGUMENT`, `INTERNAL`), the same for both APIs. `/monitoring/prometheus/metrics` serves `text()`.
"""

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _RequestLogCollector:
    """Reads the request log writers' counters at scrape time; `logs()` yields (model, queued, written)."""

    def __init__(self, logs: Callable[[], Iterable[tuple[str, int, int]]]):
        self._logs = logs

    def collect(self):
        queued = CounterMetricFamily(
            "keel_serving_request_log_queued", "Records queued for the PredictionLog request log", labels=["model"]
        )
        written = CounterMetricFamily(
            "keel_serving_request_log_written", "Records the request log writer wrote", labels=["model"]
        )
        for model, queued_count, written_count in self._logs():
            queued.add_metric([model], queued_count)
            written.add_metric([model], written_count)
        yield queued
        yield written


class Metrics:
    """Request, latency, batch and request-log metrics of one server."""

    def __init__(self, request_logs: Callable[[], Iterable[tuple[str, int, int]]]):
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "version", "signature", "api", "status"]
        self.requests = Counter("keel_serving_requests", "Predict requests answered", labels, registry=self.registry)
        self.errors = Counter(
            "keel_serving_request_errors", "Predict requests answered with an error", labels, registry=self.registry
        )
        self.latency = Histogram(
            "keel_serving_request_latency_seconds",
            "Seconds from receiving a predict request to answering it",
            ["model", "version", "signature", "api"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "keel_serving_batch_size_rows",
            "Rows per model call after micro-batching",
            ["model", "version", "signature"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_RequestLogCollector(request_logs))

    def answered(self, model: str, version: str, signature: str, api: str, status: str, seconds: float) -> None:
        """Counts one predict answer; `status` is a gRPC status code name, `OK` for success."""
        self.requests.labels(model, version, signature, api, status).inc()
        if status != "OK":
            self.errors.labels(model, version, signature, api, status).inc()
        self.latency.labels(model, version, signature, api).observe(seconds)

    def batch(self, key: tuple, rows: int) -> None:
        """Records one model call of `rows` rows; `key` is the batcher's (model, version, signature)."""
        self.batch_size.labels(*key).observe(rows)

    def text(self) -> bytes:
        """Every metric in Prometheus' text exposition format."""
        return generate_latest(self.registry)
