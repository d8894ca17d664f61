"""`keras-dcgan serve`: TF Serving's REST API (`rest_api.PredictionApi`) and the Open Inference Protocol on uvicorn.

Why uvicorn (docs/rest-server.md has the measurements): an asyncio event loop holds thousands
of idle or slow connections for the cost of a socket each, and uvicorn with its httptools
parser implements HTTP/1.1 framing (Content-Length, chunked bodies, HEAD, pipelining),
keep-alive timeouts and graceful shutdown. The app is a bare ASGI callable: routing is the
APIs' own job (`PredictionApi` for TF Serving's, `open_inference.OpenInferenceApi` for the /v2
paths), so no web framework sits in between.

What uvicorn lacks, added here and nowhere else:
- a deadline for a whole request (`RequestDeadlineProtocol`): its keep-alive timer restarts on
  every byte, so a client trickling headers or a body would hold a connection for ever;
- a cap on the request line and headers (431) and on the body (413) before the model sees it
  (the batch cap is the API's);
- predictions whose client left while they waited for the model are dropped, not computed;
- JSON errors for requests its parser refuses, and exit status 0 after a signalled stop;
- a stop that resets no connection the kernel accepted (listener.py), and SIGHUP reloading the model.

A lone server process (`--workers 1`) runs model calls on a small thread pool, one thread per
core: onnxruntime releases the GIL while it computes, and the event loop keeps reading other
connections meanwhile. Several worker processes (workers.py, the default on a machine with more
than one core) each run their calls on the event loop instead: the processes give the
parallelism, without a hand-over of the GIL per call. Everything else (parsing, checks, JSON)
runs on the event loop: work under the GIL gains nothing from another thread. Predictions that
arrive while the model is busy share its next call (`batching.ModelBatcher`).
"""

import array
import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import signal
import socket
import termios
import time
from dataclasses import dataclass

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from keras_dcgan.serving import json_codec, open_inference
from keras_dcgan.serving.batching import ClientGone, ModelBatcher
from keras_dcgan.serving.health import ServerHealth
from keras_dcgan.serving.listener import queued_connections, stop_accepting
from keras_dcgan.serving.metrics import METRICS_PATH
from keras_dcgan.serving.litert_session import require_litert
from keras_dcgan.serving.rest_api import PendingPrediction, PredictionApi
from keras_dcgan.serving.runtimes import DEFAULT_RUNTIME, RUNTIME_NAMES, LiteRTModel

LOGGER_NAME = "uvicorn"
ACCESS_LOGGER_NAME = "keras_dcgan.serve.access"
# The access log's line is this project's, not uvicorn's: operators parse access logs, and uvicorn's
# own wording has changed between releases. Client, method and path as sent, status, milliseconds
# from the request's arrival to its answer being handed to the connection.
ACCESS_LINE = '%s "%s %s" %d %.1f ms'
REFUSAL_LINE = '%s "-" %d %s'  # a request the HTTP layer refused before it had a method and path
access_logger = logging.getLogger(ACCESS_LOGGER_NAME)
MODELS_LOGGER_NAME = "keras_dcgan.serving"  # model versions loading, failing, retiring (model_repository.py)
# The request line and headers of one request. A client of this API sends a few hundred bytes;
# this is twice what nginx accepts by default (4 buffers of 8 KiB) and four times Node's 16 KiB,
# so a proxy in front refuses first, and 10,000 connections at the cap hold 640 MiB at most.
MAX_HEADER_BYTES = 64 << 10
# Scope key of a request: a callable that is true once its connection is closed (the client left).
CLIENT_GONE = "keras_dcgan.client_gone"


@dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int
    request_timeout_seconds: float  # headers and body of one request must arrive within this
    idle_timeout_seconds: float  # a connection with no request in progress is closed after this
    drain_timeout_seconds: float  # on SIGTERM/SIGINT, requests in flight get this long to finish
    # On SIGTERM/SIGINT, go on serving this long, not ready, before the drain: load balancers stop sending first.
    shutdown_delay_seconds: float = 0.0


@dataclass(frozen=True)
class BatchingOptions:
    enabled: bool  # merge predictions that wait for a model thread into one call
    max_rows: int  # rows per merged model call; a larger request still runs, alone


def error_response(status, message, close=False):
    """(status, headers, body) of a JSON error, as TF Serving sends them: {"error": "..."}."""
    body = json_codec.encode({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return status, headers, body


class RequestDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol plus a deadline per request, a header cap and JSON answers to unparsable ones.

    The deadline starts when a request's first byte arrives and stops once its body is complete;
    however slowly the bytes trickle in, a request still incomplete at the deadline gets 408 and
    the connection is closed. A connection that never
    sends a byte is closed after the idle timeout by uvicorn's own keep-alive timer, which is
    armed here at connection time (uvicorn arms it only after a first response). A request line
    and headers longer than MAX_HEADER_BYTES get 431 and the connection is closed: the parser
    would otherwise buffer a header of any length.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # uvicorn hands each connection's protocol the loaded app: with proxy headers off and no
        # trace logging (`uvicorn_config`), the RestApp itself, which carries this server's settings.
        self.request_timeout_seconds = self.app.limits.request_timeout_seconds
        self.metrics = self.app.metrics  # refusals are counted when metrics are on

    def connection_made(self, transport):
        super().connection_made(transport)
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and a socket from
        # socket.create_server has proto 0: without it the body, sent after the headers, waits
        # for the client's delayed ACK on every request.
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._deadline = None
        self._receiving = False  # a request's first byte has arrived, its last has not
        self._request_cycle = None  # that request's cycle, once its headers are complete
        self._close_after_request = False
        self._in_headers = True  # the bytes that arrive belong to a request line or headers
        self._header_bytes = 0  # of the current request, counted from whole reads (`data_received`)
        self._headers_seen = 0  # requests whose headers were complete, on this connection
        self._answering = None  # the cycle whose answer is being computed or sent; older than self.cycle when pipelined
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc):
        self._cancel_deadline()
        # uvicorn tells only the newest request of the connection that its client left; with
        # pipelined requests the one being answered is an older one, which would then write to
        # the closed transport (a RuntimeError and a traceback in the log).
        for cycle in (self._answering, *(waiting for waiting, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        super().connection_lost(exc)

    def data_received(self, data):
        self._unset_keepalive_if_required()
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout_seconds, self._deadline_passed)
        if not self._in_headers:
            self._feed(data)
            return
        # A read that begins in a request's headers: feed at most what the cap leaves, and refuse
        # if the headers are still incomplete then. (Headers that begin inside a read, after a
        # pipelined body, are counted from the next read on: at most one read more than the cap.)
        room = MAX_HEADER_BYTES - self._header_bytes
        headers_seen = self._headers_seen
        if len(data) > room:
            data = memoryview(data)
            if not self._feed(data[:room]):
                return
            if self._headers_seen == headers_seen:
                self._refuse(431, f"request line and headers of more than {MAX_HEADER_BYTES} bytes exceed this server's limit")
                return
            self._feed(data[room:])
            return
        if self._feed(data) and self._headers_seen == headers_seen:
            self._header_bytes += len(data)

    def _feed(self, data):
        """Parse `data`; False if the request was refused (and the connection closed)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            self._refuse(400, f"malformed HTTP request: {error}")
        else:
            return not self.transport.is_closing()
        return False

    def on_message_begin(self):
        super().on_message_begin()
        self._receiving = True
        self._request_cycle = None

    def on_headers_complete(self):
        self.scope[CLIENT_GONE] = self.transport.is_closing
        super().on_headers_complete()
        self._request_cycle = self.cycle
        self._in_headers = False
        self._header_bytes = 0
        self._headers_seen += 1
        if self._close_after_request:
            self.cycle.keep_alive = False

    def on_message_complete(self):
        super().on_message_complete()
        self._receiving = False
        self._in_headers = True
        self._cancel_deadline()

    def _start_asgi_task(self, cycle, app):
        self._answering = cycle
        super()._start_asgi_task(cycle, app)

    def shutdown(self):
        """Graceful stop: a request whose headers are still arriving, or not yet read, is answered (then closed) too.

        uvicorn closes a connection between two requests at once; a request its client sent on
        it that the event loop has not read yet would then be lost.
        """
        idle = self.cycle is None or self.cycle.response_complete
        if (self._receiving and self._request_cycle is None) or (idle and self._unread_bytes()):
            self._close_after_request = True
            return
        super().shutdown()

    def _unread_bytes(self):
        count = array.array("i", [0])
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.transport.get_extra_info("socket").fileno(), termios.FIONREAD, count)
        return count[0]

    def _deadline_passed(self):
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._request_cycle is not None and self._request_cycle.response_started:
            self.transport.close()  # already answering (e.g. 413 before the body): just stop reading
            return
        if not self._receiving:
            self.transport.close()  # stray bytes between requests (a CRLF after a body): no request to answer
            return
        self._refuse(408, f"the request was not complete within {self.request_timeout_seconds:g} s")

    def _cancel_deadline(self):
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status, message):
        """Answer `status` with a JSON error outside any request cycle, then close the connection."""
        if self.transport.is_closing():
            return
        if self._request_cycle is not None and not self._request_cycle.response_complete:
            self._request_cycle.disconnected = True  # the app sees http.disconnect and stops waiting for the body
            self._request_cycle.message_event.set()
        # Counted before the answer leaves: a client that has its 408 and then scrapes /metrics,
        # perhaps from another worker process, must find it counted.
        if self.metrics is not None:
            self.metrics.refused(status)
        status, headers, body = error_response(status, message, close=True)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])] + [name + b": " + value + b"\r\n" for name, value in headers]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        self.transport.close()
        access_logger.info(REFUSAL_LINE, "%s:%d" % self.client if self.client else "-", status, message)


_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class RestApp:
    """The ASGI application: body cap, `PredictionApi.begin` on the loop, predictions through the batcher.

    `threads` model calls run at a time, each on a thread (default: one per core); 0 runs them on
    the event loop. `page`, a web_page.WebPage, answers GET / and /ui/* ahead of the API;
    `reload_model()`, a coroutine function, is what SIGHUP does (`reload`).
    """

    def __init__(self, api, limits, batching, threads=None, health=None, page=None, reload_model=None):
        self.api = api
        self.page = page
        self.limits = limits
        self.metrics = api.metrics
        self.health = ServerHealth() if health is None else health
        self.open_inference = open_inference.OpenInferenceApi(api, self.health)
        model_threads = (os.cpu_count() or 1) if threads is None else threads
        self.batcher = ModelBatcher(api.run_model, model_threads, batching.max_rows, merge=batching.enabled)
        self.reload_model = reload_model

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return  # lifespan is off and websockets are not configured
        started = time.perf_counter()
        status = await self._respond(scope, receive, send)
        if status is not None and access_logger.isEnabledFor(logging.INFO):
            client = "%s:%d" % tuple(scope["client"]) if scope.get("client") else "-"
            path = scope["raw_path"].decode("latin-1") + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
            access_logger.info(ACCESS_LINE, client, scope["method"], path, status, 1000 * (time.perf_counter() - started))

    async def _respond(self, scope, receive, send):
        """Answer one request; its status, or None when the client left before it could be answered."""
        if self.page is not None and (page_answer := self.page.answer(scope)) is not None:
            return await self._send(send, *page_answer)
        if self.metrics is not None and scope["path"] == METRICS_PATH:
            return await self._send(send, *self.metrics.scrape(scope["method"]))
        body, refusal = await self._read_body(scope, receive)
        if refusal is not None:
            if self.metrics is not None:
                self.metrics.refused(refusal[0])
            return await self._send(send, *refusal)
        if body is None:
            return None  # the client went away (or the request deadline passed): nobody to answer
        if self.metrics is None:
            return await self._send_answer(send, await self._answer(scope, body))
        with self.metrics.in_flight.track_inprogress():
            return await self._send_answer(send, await self._answer(scope, body))

    async def _send_answer(self, send, answer):
        if answer is None:  # the client left while its prediction waited for the model
            return None
        return await self._send(send, *answer)

    async def _answer(self, scope, body):
        # The path as sent: each API URL-decodes the model name itself, exactly once.
        path = scope["raw_path"].decode("latin-1")
        if open_inference.handles(path):
            answer = self.open_inference.begin(scope["method"], path, scope["headers"], body)
            if isinstance(answer, open_inference.PendingInfer):
                images = await self._images(answer.prediction, scope)
                answer = None if images is None else self.open_inference.finish(answer, images)
            return answer
        answer = self.api.begin(scope["method"], path, body)
        if isinstance(answer, PendingPrediction):
            images = await self._images(answer, scope)
            if images is None:
                return None
            answer = self.api.finish(answer, images)
        return self._http_answer(*answer)

    async def _images(self, prediction, scope):
        """The model's rows for `prediction`, or None when its client left before its model call (counted as abandoned)."""
        try:
            return await self.batcher.submit(prediction, scope.get(CLIENT_GONE))
        except ClientGone:
            self.api.abandon(prediction)
            if self.metrics is not None:
                self.metrics.abandoned(prediction.signature)
            return None
        except BaseException:  # cancelled, or the model call failed: its version is not held
            self.api.abandon(prediction)
            raise

    async def reload(self):
        """SIGHUP in a lone server process: what `reload_model` does, or a log line saying it is ignored."""
        if self.reload_model is None:
            logging.getLogger(LOGGER_NAME).warning("SIGHUP ignored: this server was given a loaded model, not a file to load again")
            return
        await self.reload_model()

    @staticmethod
    def _http_answer(status, payload):
        body = json_codec.encode(payload)
        return status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], body

    async def _read_body(self, scope, receive):
        """(body, None), (None, refusal) for a body over the cap, or (None, None) when the client left."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.limits.max_body_bytes:  # the parser has checked it is a number
            return None, self._too_large(int(declared))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:  # a chunked body has no length to check up front
                return None, self._too_large(size, so_far=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self, size, so_far=False):
        what = f"request body of {'more than ' if so_far else ''}{size} bytes"
        # Closing the connection: the rest of the body is never read.
        return error_response(413, f"{what} exceeds this server's limit of {self.limits.max_body_bytes} bytes", close=True)

    @staticmethod
    async def _send(send, status, headers, body):
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status


class PredictionServer(uvicorn.Server):
    """uvicorn's server, not ready from the first SIGTERM or SIGINT on, exiting normally after it, reloading on SIGHUP.

    uvicorn re-raises the signal after its graceful shutdown (for process managers that look
    at the signal); a service that drained cleanly exits 0 instead. With a shutdown delay it
    serves on (readiness false) for that long before the drain begins; a second Ctrl-C stops at once.
    """

    drained = False
    _reloading = None

    async def startup(self, sockets=None):
        await super().startup(sockets)
        if hasattr(signal, "SIGHUP"):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload)

    def _reload(self):
        if self.should_exit:
            logging.getLogger(LOGGER_NAME).warning("SIGHUP ignored: the server is stopping")
        elif self._reloading is not None and not self._reloading.done():
            logging.getLogger(LOGGER_NAME).warning("SIGHUP ignored: a reload is already under way")
        else:
            self._reloading = asyncio.ensure_future(self.config.app.reload())

    def __init__(self, config, health, shutdown_delay_seconds=0.0):
        super().__init__(config)
        self.health = health
        self.shutdown_delay_seconds = shutdown_delay_seconds
        self._drain_at = None

    def handle_exit(self, sig, frame):
        if self._drain_at is None:
            self.health.begin_drain()
            self._drain_at = time.monotonic() + self.shutdown_delay_seconds
        super().handle_exit(sig, frame)

    async def on_tick(self, counter):
        should_exit = await super().on_tick(counter)
        return should_exit and (self.force_exit or self._drain_at is None or time.monotonic() >= self._drain_at)

    async def shutdown(self, sockets=None):
        for sock in sockets or []:  # before uvicorn closes it: accept what the kernel queued
            stop_accepting(sock)
            deadline = time.monotonic() + self.config.timeout_graceful_shutdown
            while queued_connections(sock) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        await super().shutdown(sockets)
        self.drained = not self.server_state.connections  # uvicorn waits for them all unless the drain timeout passed

    @contextlib.contextmanager
    def capture_signals(self):
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def configure_logging(access_log):
    """uvicorn's loggers and the access log on stderr, one line each; the access log (a line per request) only when asked."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("keras-dcgan serve: %(message)s"))
    for name in (LOGGER_NAME, ACCESS_LOGGER_NAME, MODELS_LOGGER_NAME):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.CRITICAL + 1)  # uvicorn's own access log: replaced by ACCESS_LINE
    access_logger.setLevel(logging.INFO if access_log else logging.CRITICAL + 1)
    logging.getLogger(MODELS_LOGGER_NAME).setLevel(logging.INFO)


@dataclass(frozen=True)
class AppSettings:
    """Everything a server process needs to build its app; picklable, so that each worker process builds its own.

    The model is one ONNX or LiteRT file (`model_path`, served as `version`; its suffix picks the
    runtime) or the version folders under `base_path`, each serving the file of `runtime`, with
    the policy and labels of `config_path` (model_repository.py).
    """

    model_path: str
    verify: bool  # check the file at `model_path` against manifest.json
    threads: int  # the runtime's threads per model call
    model_name: str
    version: int
    max_batch: int
    metrics: bool
    limits: ServerLimits
    batching: BatchingOptions
    base_path: str = None
    config_path: str = None
    poll_seconds: float = 1.0
    runtime: str = DEFAULT_RUNTIME  # which file of each version folder is served (runtimes.RUNTIME_NAMES)

    @property
    def model_source(self):
        return self.base_path or self.model_path
    health_state_file: str | None = None  # the supervisor's word on readiness (health.py), for worker processes
    page: bool = True  # the browser page at / (web_page.py)


def open_models(settings, session=None):
    """(ModelRepository, BasePathWatcher or None) of `settings`, its versions loaded; ValueError if they cannot be.

    The watcher is not started: the process that serves starts it (`build_app`).
    """
    from keras_dcgan.serving.model_config import ModelConfig, read_model_config
    from keras_dcgan.serving.model_repository import BasePathWatcher, ModelRepository, load_version
    from keras_dcgan.serving.session import GeneratorSession

    if settings.base_path is None:
        if session is None:
            session = GeneratorSession(settings.model_path, threads=settings.threads, verify=settings.verify)
        return ModelRepository.of_session(session, settings.model_name, settings.version), None
    if RUNTIME_NAMES[settings.runtime] is LiteRTModel:
        require_litert()  # one line naming the extra, rather than every version failing to load
    config = ModelConfig(settings.model_name)
    if settings.config_path is not None:
        config = read_model_config(settings.config_path, settings.model_name)
    repository = ModelRepository(settings.model_name)
    watcher = BasePathWatcher(
        repository, settings.base_path, config, settings.config_path,
        load=lambda folder, version: load_version(folder, version, settings.runtime, threads=settings.threads),
    )
    watcher.start_serving()
    return repository, watcher


def build_app(settings, models=None, worker=False):
    """The RestApp of `settings`, on `models` (`open_models`' answer) if given, else loaded here.

    A `worker` process of several shares its metrics with its peers and calls the model on its
    event loop (`ModelBatcher` with no threads); a lone server calls it on a thread per core.
    With a model base path, the version folders are polled from here on and SIGHUP re-reads
    the model config file (this must run on the main thread).
    """

    repository, watcher = models or open_models(settings)
    metrics = None
    if settings.metrics:
        from keras_dcgan.serving.metrics import PredictionMetrics

        metrics = PredictionMetrics(settings.model_name, repository.latest_version() or 0, shared=worker)
        repository.on_change = lambda: metrics.set_version(repository.latest_version() or 0)
    if watcher is not None:
        # In a worker process SIGHUP comes here; a lone server process hands it to RestApp.reload.
        signal.signal(signal.SIGHUP, lambda *_: watcher.request_reload())
        watcher.start(settings.poll_seconds)

        async def reload_model():
            watcher.request_reload()
    else:
        reload_model = functools.partial(reload_model_file, repository, settings)
    api = PredictionApi(repository, settings.max_batch, metrics)
    page = None
    if settings.page:
        from keras_dcgan.serving.web_page import WebPage, model_info

        def latest_model_info():  # the page follows the version a request without one gets
            with repository.lease(settings.model_name) as lease:
                return model_info(lease.session, settings.model_name, lease.version, "rest")

        page = WebPage(latest_model_info)
    health = ServerHealth(settings.health_state_file)
    return RestApp(
        api, settings.limits, settings.batching, threads=0 if worker else None, health=health, page=page,
        reload_model=reload_model,
    )


async def reload_model_file(repository, settings):
    """SIGHUP of `serve --onnx` or `--tflite`: load the file again, off the event loop, and serve it once it is loaded.

    Requests already begun finish on the session they began on (the repository retires it after
    them); a file that cannot be loaded (missing, tampered, not a generator) leaves the one loaded
    before serving.
    """
    from keras_dcgan.serving.session import GeneratorSession

    logger = logging.getLogger(LOGGER_NAME)
    logger.warning("SIGHUP: reloading %s", settings.model_path)
    load = functools.partial(GeneratorSession, settings.model_path, threads=settings.threads, verify=settings.verify)
    try:
        session = await asyncio.get_running_loop().run_in_executor(None, load)
    except (OSError, ValueError) as error:
        logger.error("could not reload %s: %s; still serving the model loaded before", settings.model_path, error)
        return
    repository.replace_session(settings.version, session)
    logger.warning("reloaded %s: new requests are answered by it", settings.model_path)


def uvicorn_config(app, limits, **options):
    """uvicorn's configuration of a server process: our protocol, our limits, no lifespan, no proxy."""
    return uvicorn.Config(
        app,
        http=RequestDeadlineProtocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,  # RestApp writes the access log itself (ACCESS_LINE)
        server_header=False,
        proxy_headers=False,  # no proxy in front by default: log the peer's own address, skip a middleware per request
        timeout_keep_alive=limits.idle_timeout_seconds,
        timeout_graceful_shutdown=limits.drain_timeout_seconds,
        backlog=2048,
        **options,
    )


def serve(app, sock, on_ready=None, access_log=False):
    """Serve `app` (a RestApp) in this process on the bound, listening socket `sock` until SIGTERM/SIGINT.

    Returns True if every request finished within the drain timeout.
    """
    configure_logging(access_log)
    server = PredictionServer(uvicorn_config(app, app.limits), app.health, app.limits.shutdown_delay_seconds)
    if on_ready is not None:
        on_ready(url_of(sock))
    try:
        server.run(sockets=[sock])
    finally:
        app.batcher.shutdown()
    return server.drained


def url_of(sock):
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"
