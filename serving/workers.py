"""Several server processes on one listening socket (`keras-dcgan serve --workers N`).

One Python process answers HTTP and JSON on one core at a time (the GIL), while onnxruntime
runs beside it; with batch-1 requests that Python work, not the model, fills the process's
core. Worker processes that share the one listening socket take connections from its single
accept queue, so a busy worker simply accepts fewer: the cores fill evenly without a balancer.
docs/rest-server.md has the measurements.

Supervision is uvicorn's own (`uvicorn.supervisors.Multiprocess`, what `uvicorn --workers`
runs): it restarts a worker that dies, forwards SIGTERM and SIGINT so that every worker drains
its requests, and on SIGHUP replaces the workers one by one, each loading the model file again.
Each worker is a fresh interpreter (spawned, not forked) that loads its own onnxruntime session
from `AppSettings`. A SIGHUP sent to a worker itself is ignored, with a log line: reloading is
the supervisor's job. Before the workers stop, the supervisor lets them accept every connection
the kernel has queued and stops new ones (listener.py), then closes its own copy of the socket.
"""

import asyncio
import functools
import logging
import os
import signal
import sys
import tempfile
import time

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from keras_dcgan.serving.listener import queued_connections, stop_accepting
from keras_dcgan.serving.metrics import SHARED_FOLDER_VARIABLE
from keras_dcgan.serving.server import LOGGER_NAME, build_app, configure_logging, url_of, uvicorn_config

# A fresh interpreter imports numpy and onnxruntime and loads the model: seconds on a busy device.
# uvicorn waits as long for a worker's health-check answer before it replaces the worker as hung.
WORKER_START_TIMEOUT_SECONDS = 30.0


def worker_app(settings, access_log):
    """Run in each worker process, on its event loop: its logging, then its own app (a worker that cannot build one stops the server)."""
    configure_logging(access_log)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _ignore_sighup)
    try:
        return build_app(settings, worker=True)
    except Exception as error:  # the parent loaded this model already: anything here is the worker's own failure
        logging.getLogger(LOGGER_NAME).error("worker process %d could not load %s: %s", os.getpid(), settings.onnx_path, error)
        sys.exit(STARTUP_FAILURE)


def _ignore_sighup():
    logging.getLogger(LOGGER_NAME).warning(
        "SIGHUP ignored by worker process %d: send it to the supervising process %d, which reloads the model", os.getpid(), os.getppid()
    )


class WorkerSupervisor(Multiprocess):
    """uvicorn's supervisor, announcing the URL once every worker serves and remembering a failed start.

    A worker that cannot load the model (a file changed since the server started) stops the server
    if it was a first start or a restart after a crash; on SIGHUP, uvicorn instead keeps the old
    worker serving.
    """

    def __init__(self, config, sockets, on_ready, model_path):
        super().__init__(config, sockets)
        self.on_ready = on_ready
        self.model_path = model_path
        self.failed_to_start = False
        # uvicorn queues signals and looks at them every 0.5 s: until then a worker would still answer
        # a request that arrives as an ordinary keep-alive one, not with `Connection: close`.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: self.should_exit.set())

    def init_processes(self):
        super().init_processes()
        if all(process.wait_until_ready(WORKER_START_TIMEOUT_SECONDS) for process in self.processes):
            self.on_ready()
        else:
            self.failed_to_start = True
            self.should_exit.set()

    def keep_subprocess_alive(self):
        super().keep_subprocess_alive()
        self.failed_to_start |= any(process.exitcode == STARTUP_FAILURE for process in self.processes)

    def handle_hup(self):
        logger = logging.getLogger(LOGGER_NAME)
        logger.warning("SIGHUP: reloading %s, replacing the %d worker processes one by one", self.model_path, len(self.processes))
        before = {process.pid for process in self.processes}
        super().handle_hup()
        replaced = sum(process.pid not in before for process in self.processes)
        if replaced == len(self.processes):
            logger.warning("reloaded %s: new requests are answered by it", self.model_path)
        elif not self.should_exit.is_set():
            logger.error(
                "could not reload %s (the reason is logged above); %d of %d workers still serve the model loaded before",
                self.model_path, len(self.processes) - replaced, len(self.processes),
            )

    def terminate_all(self):
        # While any process holds the listening socket open, the kernel completes handshakes: a
        # connection queued then, or still queued when the last copy closes, would be reset.
        for sock in self.sockets:
            stop_accepting(sock)
            deadline = time.monotonic() + self.config.timeout_graceful_shutdown
            while queued_connections(sock) and time.monotonic() < deadline:  # the workers still accept
                time.sleep(0.005)
            sock.close()
        super().terminate_all()


def serve_workers(settings, workers, sock, on_ready, access_log=False):
    """Serve with `workers` processes on the bound, listening socket `sock` until SIGTERM/SIGINT.

    Raises ValueError if a worker could not start (its reason is in the log).
    """
    configure_logging(access_log)
    with tempfile.TemporaryDirectory(prefix="keras-dcgan-metrics-") as metrics_folder:
        if settings.metrics:
            os.environ[SHARED_FOLDER_VARIABLE] = metrics_folder  # inherited by the workers, read as they import prometheus_client
        config = uvicorn_config(
            functools.partial(worker_app, settings, access_log), settings.limits, access_log, factory=True, workers=workers,
            timeout_worker_healthcheck=WORKER_START_TIMEOUT_SECONDS,
        )
        supervisor = WorkerSupervisor(config, [sock], lambda: on_ready(url_of(sock)), settings.onnx_path)
        supervisor.run()
    if supervisor.failed_to_start:
        raise ValueError(f"a worker process could not start serving {settings.onnx_path}; its error is logged above")
