"""Several server processes on one listening socket (`keras-dcgan serve --workers N`).

One Python process answers HTTP and JSON on one core at a time (the GIL), while onnxruntime
runs beside it; with batch-1 requests that Python work, not the model, fills the process's
core. Worker processes that share the one listening socket take connections from its single
accept queue, so a busy worker simply accepts fewer: the cores fill evenly without a balancer.
docs/rest-server.md has the measurements.

Supervision is uvicorn's own (`uvicorn.supervisors.Multiprocess`, what `uvicorn --workers`
runs): it restarts a worker that dies, forwards SIGTERM and SIGINT so that every worker drains
its requests, and on SIGHUP replaces the workers one by one, each loading the model file again;
serving a model base path, it passes SIGHUP on to every worker instead, which re-reads the model
config file in place. Each worker is a fresh interpreter (spawned, not forked) that loads its own
models (onnxruntime sessions or LiteRT interpreters) from `AppSettings` (and, from a base path,
polls the version folders on its own). A SIGHUP sent to a worker of an `--onnx` or `--tflite`
server itself is ignored, with a log line: replacing workers is the supervisor's job. Before the workers stop, the supervisor lets them
accept every connection the kernel has queued and stops new ones (listener.py), then closes its
own copy of the socket.
"""

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import sys
import tempfile
import threading
import time

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from keras_dcgan.serving import health
from keras_dcgan.serving.listener import queued_connections, stop_accepting
from keras_dcgan.serving.metrics import SHARED_FOLDER_VARIABLE
from keras_dcgan.serving.server import LOGGER_NAME, build_app, configure_logging, url_of, uvicorn_config

# A fresh interpreter imports numpy and onnxruntime and loads the model: seconds on a busy device.
# uvicorn waits as long for a worker's health-check answer before it replaces the worker as hung.
WORKER_START_TIMEOUT_SECONDS = 30.0


def worker_app(settings, access_log):
    """Run in each worker process, on its event loop: its logging, then its own app (a worker that cannot build one stops the server)."""
    configure_logging(access_log)
    if settings.base_path is None:  # from a base path, build_app's handler re-reads the model config instead
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _ignore_sighup)
    try:
        app = build_app(settings, worker=True)
    except Exception as error:  # the parent loaded this model already: anything here is the worker's own failure
        logging.getLogger(LOGGER_NAME).error("worker process %d could not load %s: %s", os.getpid(), settings.model_source, error)
        sys.exit(STARTUP_FAILURE)
    # Built while uvicorn's stop handler is installed: a worker told to stop (SIGHUP retires the old
    # ones) is not ready from then on, while it drains and its peers serve.
    stop = signal.getsignal(signal.SIGTERM)

    def drain(sig, frame):
        app.health.begin_drain()
        stop(sig, frame)

    signal.signal(signal.SIGTERM, drain)
    return app


def _ignore_sighup():
    logging.getLogger(LOGGER_NAME).warning(
        "SIGHUP ignored by worker process %d: send it to the supervising process %d, which reloads the model", os.getpid(), os.getppid()
    )


class WorkerSupervisor(Multiprocess):
    """uvicorn's supervisor, announcing the URL once every worker serves and remembering a failed start.

    A worker that cannot load the model (a file changed since the server started) stops the server
    if it was a first start or a restart after a crash; on SIGHUP, uvicorn instead keeps the old
    worker serving. The supervisor alone knows when every worker serves and when the drain
    begins: it tells the workers through `state_file` (health.py), which their readiness reads.
    """

    def __init__(self, config, sockets, on_ready, state_file, model_path, shutdown_delay_seconds=0.0, reload_on_hup=False):
        super().__init__(config, sockets)
        self.on_ready = on_ready
        self.model_path = model_path
        self.reload_on_hup = reload_on_hup  # SIGHUP re-reads the model config in each worker instead of replacing it
        self.failed_to_start = False
        self.state_file = state_file
        self.shutdown_delay_seconds = shutdown_delay_seconds
        self._stopping = False
        health.write_state(state_file, health.STARTING)
        # uvicorn queues signals and looks at them only on its periodic tick: until then a worker would still answer
        # a request that arrives as an ordinary keep-alive one, not with `Connection: close`.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: self.stop())

    def stop(self):
        """Not ready at once; the workers drain after the shutdown delay (at once on a second signal)."""
        if self._stopping or not self.shutdown_delay_seconds:
            self.should_exit.set()
        else:
            timer = threading.Timer(self.shutdown_delay_seconds, self.should_exit.set)
            timer.daemon = True
            timer.start()
        self._stopping = True
        health.write_state(self.state_file, health.DRAINING)

    def init_processes(self):
        super().init_processes()
        if all(process.wait_until_ready(WORKER_START_TIMEOUT_SECONDS) for process in self.processes):
            if not self._stopping:
                health.write_state(self.state_file, health.READY)
            self.on_ready()
        else:
            self.failed_to_start = True
            self.should_exit.set()

    def keep_subprocess_alive(self):
        super().keep_subprocess_alive()
        self.failed_to_start |= any(process.exitcode == STARTUP_FAILURE for process in self.processes)

    def handle_hup(self):
        logger = logging.getLogger(LOGGER_NAME)
        if self.reload_on_hup:
            logger.warning("SIGHUP: each of the %d worker processes re-reads the model config of %s", len(self.processes), self.model_path)
            for process in self.processes:
                if process.exitcode is None:
                    os.kill(process.pid, signal.SIGHUP)
            return
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
    with tempfile.TemporaryDirectory(prefix="keras-dcgan-metrics-") as metrics_folder, tempfile.TemporaryDirectory(
        prefix="keras-dcgan-health-"
    ) as health_folder:
        if settings.metrics:
            os.environ[SHARED_FOLDER_VARIABLE] = metrics_folder  # inherited by the workers, read as they import prometheus_client
        state_file = os.path.join(health_folder, "state")
        settings = dataclasses.replace(settings, health_state_file=state_file)
        config = uvicorn_config(
            functools.partial(worker_app, settings, access_log), settings.limits, factory=True, workers=workers,
            timeout_worker_healthcheck=WORKER_START_TIMEOUT_SECONDS,
        )
        supervisor = WorkerSupervisor(
            config, [sock], lambda: on_ready(url_of(sock)), state_file, settings.model_source,
            settings.limits.shutdown_delay_seconds, reload_on_hup=settings.base_path is not None,
        )
        supervisor.run()
    if supervisor.failed_to_start:
        raise ValueError(f"a worker process could not start serving {settings.model_source}; its error is logged above")
