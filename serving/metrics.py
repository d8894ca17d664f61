"""Prometheus metrics of `keras-dcgan serve --metrics`, at TF Serving's path for them.

TF Serving exposes its metrics at /monitoring/prometheus/metrics when given a monitoring
config; this server offers the same path, behind a flag, with its own metric names:

    keras_dcgan_serve_requests_total{signature, status}   answers by signature (or status/metadata) and HTTP status;
                                                          signature "" for requests refused before any route
                                                          (408 too slow, 413 too large, 431 headers too large,
                                                          400 unparsable HTTP); status 499 (nginx's "client
                                                          closed request") for a prediction whose client left
                                                          before it reached the model: never computed nor answered
    keras_dcgan_serve_request_seconds{signature}          latency histogram, from the parsed request to the payload
    keras_dcgan_serve_requests_in_flight                  requests whose body was read and whose answer is not yet sent
    keras_dcgan_serve_model_version{model}                the version a request without version gets (0: none)
    keras_dcgan_serve_batch_size                          rows per model call (histogram), as TF Serving's
                                                          /tensorflow/serving/batching/batch_size
    keras_dcgan_serve_batch_requests                      requests merged into one model call (histogram)

Each server has its own registry, so tests and several servers in one process never mix.
When several worker processes serve one port (`serve --workers`), each writes its values to a
shared folder (prometheus_client's multiprocess mode) and a scrape, answered by whichever worker
accepted it, sums them over every worker: counts and histograms of all requests, in-flight
requests of the workers alive.
"""

import os
import pathlib

import prometheus_client
from prometheus_client import multiprocess

METRICS_PATH = "/monitoring/prometheus/metrics"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
COUNT_BUCKETS = tuple(2**power for power in range(14))  # 1, 2, 4, ..., 8192: TF Serving's batch-size buckets


SHARED_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it when it is imported


class PredictionMetrics:
    """The metrics of one server process; `shared=True` in a worker process whose values are summed with its peers'.

    With `shared`, the environment variable PROMETHEUS_MULTIPROC_DIR must have named the shared
    folder before this process imported prometheus_client (`serve_workers` sets it for its workers).
    """

    def __init__(self, model_name, version, shared=False):
        prometheus_client.disable_created_metrics()  # *_created series: noise for a scrape
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        if shared:
            folder = os.environ[SHARED_FOLDER_VARIABLE]
            forget_dead_workers(folder)
            multiprocess.MultiProcessCollector(self.registry, path=folder)
        owner = None if shared else self.registry  # shared values are read from the folder, not from these objects
        self.requests = prometheus_client.Counter(
            "keras_dcgan_serve_requests", "Requests answered, by signature and HTTP status.", ["signature", "status"], registry=owner
        )
        self.latency = prometheus_client.Histogram(
            "keras_dcgan_serve_request_seconds", "Time to answer a request, by signature.", ["signature"],
            buckets=LATENCY_BUCKETS, registry=owner,
        )
        self.in_flight = prometheus_client.Gauge(
            "keras_dcgan_serve_requests_in_flight", "Requests whose body was read and whose answer is not yet sent.",
            registry=owner, multiprocess_mode="livesum",
        )
        model_version = prometheus_client.Gauge(
            "keras_dcgan_serve_model_version", "Version of the model being served.", ["model"], registry=owner,
            multiprocess_mode="livemax",  # of the workers alive: a rollback lowers it
        )
        self.model_version = model_version.labels(model=model_name)
        self.model_version.set(version)
        self.batch_rows = prometheus_client.Histogram(
            "keras_dcgan_serve_batch_size", "Rows per model call.", buckets=COUNT_BUCKETS, registry=owner
        )
        self.batch_requests = prometheus_client.Histogram(
            "keras_dcgan_serve_batch_requests", "Requests merged into one model call.", buckets=COUNT_BUCKETS, registry=owner
        )

    def set_version(self, version):
        """The version a request without version or label gets (0 while none is available)."""
        self.model_version.set(version)

    def observe(self, signature, status, seconds):
        """One answer; `signature` is "" for a request that never named a model route."""
        self.requests.labels(signature=signature, status=str(status)).inc()
        self.latency.labels(signature=signature).observe(seconds)

    def refused(self, status):
        """A request refused before it reached the API (408, 413, 431, unparsable HTTP): counted, not timed."""
        self.requests.labels(signature="", status=str(status)).inc()

    def abandoned(self, signature):
        """A prediction dropped from the queue because its client left (499, as nginx logs it): counted, not timed."""
        self.requests.labels(signature=signature, status="499").inc()

    def observe_batch(self, rows, requests):
        """One model call of `rows` rows for `requests` requests."""
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)

    def scrape(self, method):
        """(status, headers, body) for a request to METRICS_PATH."""
        if method not in ("GET", "HEAD"):
            body = b'{"error": "method not allowed on %s; use GET"}' % METRICS_PATH.encode()
            headers = [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD")]
            return 405, headers + [(b"content-length", str(len(body)).encode())], body
        body = prometheus_client.generate_latest(self.registry)
        headers = [(b"content-type", prometheus_client.CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
        return 200, headers, body


def forget_dead_workers(folder):
    """Drop the live gauges (in-flight requests) of worker processes that no longer run, e.g. one that crashed.

    A worker's counts and histograms stay: the requests it answered were answered.
    """
    for path in pathlib.Path(folder).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
        except PermissionError:
            pass  # a live process of another user
