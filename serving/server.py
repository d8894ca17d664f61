"""`keras-dcgan serve`: TF Serving's REST API for the ONNX generator on the standard library's HTTP server.

Why `http.server.ThreadingHTTPServer`: it ships with Python, so a device needs nothing beyond
numpy, onnxruntime and Pillow; a thread per connection runs requests concurrently, and
onnxruntime releases the GIL while it computes. Measured on an idle 2-core machine: 3,463
predictions/s at batch 1 with p99 5.7 ms (targets: 1,000/s, 10 ms); 1,455-3,244/s with p99
18-83 ms while other jobs held the cores (README, section serving, with a no-model baseline).
At batch 1 most of a request's time is the model itself; JSON goes through orjson when installed.

Hardening: bound to 127.0.0.1 unless told otherwise; bodies above `max_body_bytes` are refused
before they are read; at most `max_connections` open connections (threads); idle connections
and bodies that stop arriving time out (`ServerLimits`); every error is a JSON
{"error": ...}; SIGTERM or SIGINT stop accepting, let requests in flight finish, and exit 0.
"""

import signal
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keras_dcgan.serving import json_response
from keras_dcgan.serving.rest_api import ApiError

DRAIN_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int
    max_connections: int  # open connections, each with its own thread
    idle_timeout_seconds: float  # for an idle keep-alive connection, or a body that stops arriving


class PredictionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection for many requests
    default_request_version = "HTTP/1.0"  # so that errors on garbage request lines still get a status line
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "keras-dcgan-serve"

    def setup(self):
        self.timeout = self.server.limits.idle_timeout_seconds  # StreamRequestHandler.setup applies it to the socket
        super().setup()

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def do_PATCH(self):
        self._handle()

    def _handle(self):
        with self.server.in_flight:
            try:
                body = self._read_body()
                status, payload = self.server.api.respond(self.command, self.path, body)
            except ApiError as error:
                status, payload = error.status, {"error": error.message}
            except Exception as error:  # a bug must not take the server down; the client learns it was ours
                self.log_error("internal error on %s %s: %r", self.command, self.path, error)
                status, payload = 500, {"error": f"internal server error: {type(error).__name__}: {error}"}
            if self.server.stopping.is_set():
                self.close_connection = True  # and tell the client, so that it does not reuse the connection
            self._send_json(status, payload)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "chunked bodies are not supported: send a Content-Length header")
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.isdigit():
            self.close_connection = True
            raise ApiError(400, f"invalid Content-Length header: {length!r}")
        length = int(length)
        if length > self.server.limits.max_body_bytes:
            self.close_connection = True  # the unread body makes the connection unusable
            raise ApiError(413, f"request body of {length} bytes exceeds this server's limit of {self.server.limits.max_body_bytes} bytes")
        try:
            return self.rfile.read(length)
        except TimeoutError as error:
            self.close_connection = True
            raise ApiError(408, f"the request body did not arrive within {self.timeout} s") from error

    def _send_json(self, status, payload):
        body = json_response.encode(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """Protocol errors found by http.server itself (bad request line, unknown method) as JSON too."""
        self.close_connection = True
        text = message or self.responses.get(code, ("error",))[0]
        if code == 501:  # http.server's answer to a method it has no do_X for
            code, text = 405, f"method {self.command} not allowed"
        self._send_json(code, {"error": text})

    def log_message(self, format, *args):
        """Quiet per request (it would cost more than a prediction); errors still go to stderr."""

    def log_error(self, format, *args):
        if format.startswith("Request timed out"):  # an idle keep-alive connection closed: routine, not an error
            return
        sys.stderr.write(f"keras-dcgan serve: {format % args}\n")


class InFlight:
    """Counts requests being handled, so that shutdown can wait for them."""

    def __init__(self):
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self):
        with self._idle:
            self._count += 1

    def __exit__(self, *exc_info):
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout):
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class PredictionServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold the process at exit
    request_queue_size = 128

    def __init__(self, address, api, limits):
        self.api = api
        self.limits = limits
        self.connection_slots = threading.BoundedSemaphore(limits.max_connections)  # one thread per open connection
        self.in_flight = InFlight()
        self.stopping = threading.Event()
        super().__init__(address, PredictionHandler)

    def process_request(self, request, client_address):
        """Refuse a connection beyond `max_connections` with a 503 instead of starting yet another thread."""
        if not self.connection_slots.acquire(blocking=False):
            body = json_response.encode({"error": "too many open connections; retry later"})
            try:
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            except OSError:
                pass  # the client is gone already
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connection_slots.release()

    def stop(self):
        """Stop accepting; safe to call from a signal handler (shutdown() itself blocks, so it runs on a thread)."""
        if not self.stopping.is_set():
            self.stopping.set()
            threading.Thread(target=self.shutdown, daemon=True).start()


def serve(api, limits, host="127.0.0.1", port=8501, on_ready=None):
    """Serve until SIGTERM/SIGINT, then drain requests in flight. `on_ready(url)` is called once listening."""
    server = PredictionServer((host, port), api, limits)
    previous = {sig: signal.signal(sig, lambda signum, frame: server.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_ready is not None:
            on_ready(f"http://{host}:{server.server_address[1]}")
        server.serve_forever(poll_interval=0.2)
        drained = server.in_flight.wait_idle(DRAIN_TIMEOUT_SECONDS)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return drained
