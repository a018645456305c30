"""What the web app counts, in Prometheus' text format (`GET /metrics`), with `prometheus_client`.

Each `ServerMetrics` has a registry of its own (not the process-wide default), so two apps in
one process (the tests start several) count apart. The names:

- `adcorre_http_requests_total{route, method, status}`: every answered request; `route` is the
  URL rule (`/api/recognize`, `/static/<name>`; `unmatched` for a 404 of routing, so a scan of
  made-up paths cannot grow the series without bound).
- `adcorre_http_errors_total{route, status}`: the 4xx and 5xx among them.
- `adcorre_http_request_duration_seconds{route}`: a histogram of the time from the app's call to
  its answer (the upload is already read by the server by then).
- `adcorre_batch_size`: a histogram of pictures per model call; `adcorre_batch_seconds` of each
  call's time; `adcorre_batch_wait_seconds` of each picture's time in the queue before its call.
- `adcorre_model_info{name, kind, arch, detector, input_size}`: 1, the served model.

Example:

>>> metrics = ServerMetrics({"name": "tiny.h5", "kind": "project", "arch": "tiny",
...                          "detector": "blazeface", "input_size": [32, 32]})
>>> metrics.observe_request("/api/health", "GET", 200, 0.002)
>>> body, content_type = metrics.exposition()
>>> 'adcorre_http_requests_total{method="GET",route="/api/health",status="200"} 1.0' in body.decode()
True
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.exposition import generate_latest

# Prometheus' text format, the version every Prometheus reads (newer clients announce 1.0.0,
# which differs only for metric names outside [a-zA-Z0-9_:], and these have none).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: a static file takes well under 1 ms, Xception on a loaded CPU seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75,
                   1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
WAIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED_ROUTE = "unmatched"


class ServerMetrics:
    """The web app's counters and histograms, in a registry of their own.

    Args:
        model: `server.describe_model`'s dict (its name, kind, arch, detector and input size
            label `adcorre_model_info`).
    """

    def __init__(self, model):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("adcorre_http_requests", "HTTP requests answered",
                                ("route", "method", "status"), registry=self.registry)
        self.errors = Counter("adcorre_http_errors", "HTTP requests answered with 4xx or 5xx",
                              ("route", "status"), registry=self.registry)
        self.latency = Histogram("adcorre_http_request_duration_seconds",
                                 "Seconds from the app's call to its answer", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("adcorre_batch_size", "Pictures per model call",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("adcorre_batch_seconds",
                                       "Seconds of one batched call (detection and model)",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_wait = Histogram("adcorre_batch_wait_seconds",
                                    "Seconds a picture waited for its batch to start",
                                    buckets=WAIT_BUCKETS, registry=self.registry)
        info = Info("adcorre_model", "The served model", registry=self.registry)
        info.info({
            "name": str(model.get("name")),
            "kind": str(model.get("kind")),
            "arch": str(model.get("arch")),
            "detector": str(model.get("detector")),
            "input_size": "x".join(str(v) for v in model.get("input_size", ())),
        })

    def observe_request(self, route, method, status, seconds):
        """Counts one answered request (`route` the URL rule, or `UNMATCHED_ROUTE`)."""
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        if status >= 400:
            self.errors.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_batch(self, size, waits, seconds):
        """Records one model call of `size` pictures (`batching.Batcher`'s `observe`)."""
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        for wait in waits:
            self.batch_wait.observe(wait)

    def exposition(self):
        """`(body bytes, content type)` of Prometheus' text format, version 0.0.4."""
        return generate_latest(self.registry), CONTENT_TYPE
