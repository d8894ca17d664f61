"""`keras-dcgan serve`: TF Serving's REST API (`rest_api.PredictionApi`) on uvicorn.

Why uvicorn (docs/rest-server.md has the measurements): an asyncio event loop holds thousands
of idle or slow connections for the cost of a socket each, and uvicorn with its httptools
parser implements HTTP/1.1 framing (Content-Length, chunked bodies, HEAD, pipelining),
keep-alive timeouts and graceful shutdown. The app is a bare ASGI callable: routing is
`PredictionApi`'s own job, so no web framework sits in between.

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

from keras_dcgan.serving import json_codec
from keras_dcgan.serving.batching import ClientGone, ModelBatcher
from keras_dcgan.serving.listener import queued_connections, stop_accepting
from keras_dcgan.serving.metrics import METRICS_PATH
from keras_dcgan.serving.rest_api import PendingPrediction, PredictionApi

LOGGER_NAME = "uvicorn"
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
        # for the client's delayed ACK (~40 ms per request).
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
        if self.access_log:
            self.access_logger.info('%s - "-" %d %s', "%s:%d" % self.client if self.client else "-", status, message)


_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class RestApp:
    """The ASGI application: body cap, `PredictionApi.begin` on the loop, predictions through the batcher.

    `threads` model calls run at a time, each on a thread (default: one per core); 0 runs them on
    the event loop. `open_session()`, when given, loads the model file again for `reload`.
    """

    def __init__(self, api, limits, batching, threads=None, open_session=None):
        self.api = api
        self.limits = limits
        self.metrics = api.metrics
        self.batching = batching
        self.model_threads = (os.cpu_count() or 1) if threads is None else threads
        self.open_session = open_session
        self.batcher = self._batcher_of(api)

    def _batcher_of(self, api):
        return ModelBatcher(api.run_model, self.model_threads, self.batching.max_rows, merge=self.batching.enabled)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return  # lifespan is off and websockets are not configured
        if self.metrics is not None and scope["path"] == METRICS_PATH:
            await self._send(send, *self.metrics.scrape(scope["method"]))
            return
        body, refusal = await self._read_body(scope, receive)
        if refusal is not None:
            if self.metrics is not None:
                self.metrics.refused(refusal[0])
            await self._send(send, *refusal)
            return
        if body is None:
            return  # the client went away (or the request deadline passed): nobody to answer
        if self.metrics is None:
            await self._respond(send, scope, body)
        else:
            with self.metrics.in_flight.track_inprogress():
                await self._respond(send, scope, body)

    async def _respond(self, send, scope, body):
        answer = await self._answer(scope, body)
        if answer is not None:  # None: the client left while its prediction waited for the model
            await self._send(send, *answer)

    async def _answer(self, scope, body):
        api, batcher = self.api, self.batcher  # a reload replaces both: a request finishes on the model it began on
        # The path as sent: PredictionApi URL-decodes the model name itself, exactly once.
        answer = api.begin(scope["method"], scope["raw_path"].decode("latin-1"), body)
        if isinstance(answer, PendingPrediction):
            try:
                images = await batcher.submit(answer, scope.get(CLIENT_GONE))
            except ClientGone:
                if self.metrics is not None:
                    self.metrics.abandoned(answer.signature)
                return None
            answer = api.finish(answer, images)
        return self._http_answer(*answer)

    async def reload(self):
        """SIGHUP: load the model file again, off the event loop, and serve it once it is loaded.

        Requests already begun finish on the model they began on; a file that cannot be loaded
        (missing, tampered, not a generator) leaves the model loaded before serving.
        """
        logger = logging.getLogger(LOGGER_NAME)
        path = self.api.session.onnx_path
        if self.open_session is None:
            logger.warning("SIGHUP ignored: this server was given a loaded model, not a file to load again")
            return
        logger.warning("SIGHUP: reloading %s", path)
        try:
            session = await asyncio.get_running_loop().run_in_executor(None, self.open_session)
        except (OSError, ValueError) as error:
            logger.error("could not reload %s: %s; still serving the model loaded before", path, error)
            return
        old = self.api
        self.api = PredictionApi(session, old.model_name, old.version, old.max_batch, old.metrics)
        old_batcher, self.batcher = self.batcher, self._batcher_of(self.api)
        old_batcher.retire()
        logger.warning("reloaded %s: new requests are answered by it", path)

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


class PredictionServer(uvicorn.Server):
    """uvicorn's server, exiting normally after SIGTERM or SIGINT, reloading its model on SIGHUP.

    uvicorn re-raises the signal after its graceful shutdown (for process managers that look
    at the signal); a service that drained cleanly exits 0 instead.
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
    """uvicorn's loggers on stderr, one line each; the access log (a line per request) only when asked."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("keras-dcgan serve: %(message)s"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO if access_log else logging.CRITICAL + 1)


@dataclass(frozen=True)
class AppSettings:
    """Everything a server process needs to build its app; picklable, so that each worker process builds its own."""

    onnx_path: str
    verify: bool  # check the ONNX file against manifest.json
    onnx_threads: int  # onnxruntime threads per model call
    model_name: str
    version: int
    max_batch: int
    metrics: bool
    limits: ServerLimits
    batching: BatchingOptions


def build_app(settings, session=None, worker=False):
    """The RestApp of `settings`, on `session` if given (else the ONNX file is loaded here).

    A `worker` process of several shares its metrics with its peers and calls the model on its
    event loop (`ModelBatcher` with no threads); a lone server calls it on a thread per core.
    """
    from keras_dcgan.serving.session import GeneratorSession

    def open_session():
        return GeneratorSession(settings.onnx_path, threads=settings.onnx_threads, verify=settings.verify)

    if session is None:
        session = open_session()
    metrics = None
    if settings.metrics:
        from keras_dcgan.serving.metrics import PredictionMetrics

        metrics = PredictionMetrics(settings.model_name, settings.version, shared=worker)
    api = PredictionApi(session, settings.model_name, settings.version, settings.max_batch, metrics)
    return RestApp(api, settings.limits, settings.batching, threads=0 if worker else None, open_session=open_session)


def uvicorn_config(app, limits, access_log, **options):
    """uvicorn's configuration of a server process: our protocol, our limits, no lifespan, no proxy."""
    return uvicorn.Config(
        app,
        http=RequestDeadlineProtocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=access_log,
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
    server = PredictionServer(uvicorn_config(app, app.limits, access_log))
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
