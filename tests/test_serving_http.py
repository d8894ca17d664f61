"""`keras-dcgan serve` over real sockets on 127.0.0.1: slow and idle clients, framing, shutdown, logs, metrics.

The server runs in a subprocess where TensorFlow cannot be imported. Every loop here is
bounded in count and time.
"""

import contextlib
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import socket
import threading
import time
import urllib.parse

import pytest

from keras_dcgan.latents import latents_from_seeds
from test_serving_support import start_keras_dcgan_serve

PREDICT = "/v1/models/dcgan:predict"
IDLE_CONNECTIONS = 500
SLOW_CONNECTIONS = 64


def predict_body(batch=1, latent_dim=32):
    return json.dumps({"instances": latents_from_seeds(range(batch), latent_dim).tolist()}).encode()


def request_bytes(method, path, body=b"", headers=()):
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers]
    if body and not any(header.lower().startswith(("content-length", "transfer-encoding")) for header in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def connect(url, timeout=10):
    host, port = urllib.parse.urlsplit(url).netloc.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_response(stream, method="POST"):
    """(status, headers dict with lower-case names, body) of one response, or None if the connection closed first."""
    status_line = stream.readline()
    if not status_line:
        return None
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if method == "HEAD" else int(headers.get("content-length", 0))
    return int(status_line.split()[1]), headers, stream.read(length)


def exchange(url, data, method="POST", timeout=10):
    with connect(url, timeout) as connection:
        connection.sendall(data)
        return read_response(connection.makefile("rb"), method)


def raise_open_file_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard < needed:
            pytest.skip(f"this test needs {needed} open files; the hard limit here is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture(scope="module")
def server(exported_model):
    process = start_keras_dcgan_serve(
        exported_model.onnx_path, "--request-timeout", 3, "--max-body-bytes", 200_000, "--max-batch", 64, "--metrics", "--access-log"
    )
    yield process
    process.stop()


# -- slow and idle clients --------------------------------------------------------------------------


@pytest.mark.slow
def test_idle_and_slow_header_connections_neither_lock_others_out_nor_live_forever(server):
    raise_open_file_limit(4 * (IDLE_CONNECTIONS + SLOW_CONNECTIONS) + 256)
    idle = [connect(server.url) for _ in range(IDLE_CONNECTIONS)]
    slow = [connect(server.url) for _ in range(SLOW_CONNECTIONS)]
    header = request_bytes("GET", "/v1/models/dcgan")
    stop_trickling = threading.Event()

    def trickle():  # one byte per connection every 0.2 s: each byte would restart an idle timer
        for position in range(len(header) - 2):  # never the final CRLF: the headers never complete
            if stop_trickling.wait(0.2):
                return
            for connection in slow:
                try:
                    connection.send(header[position : position + 1])
                except OSError:
                    pass  # closed by the server's deadline: checked below

    trickler = threading.Thread(target=trickle, daemon=True)
    try:
        trickler.start()
        time.sleep(1.0)
        started = time.monotonic()
        status, _, body = exchange(server.url, request_bytes("POST", PREDICT, predict_body()), timeout=5)
        assert status == 200 and time.monotonic() - started < 1.0
        assert len(json.loads(body)["predictions"]) == 1
        for connection in slow:  # the deadline (3 s) passed while the headers were still trickling in
            connection.settimeout(6)
            response = read_response(connection.makefile("rb"))
            assert response is not None and response[0] == 408, response
            assert response[1]["connection"] == "close" and "not complete within 3 s" in json.loads(response[2])["error"]
            assert connection.recv(1) == b"", "the connection must be closed after the 408"
    finally:
        stop_trickling.set()
        trickler.join(5)
        for connection in idle + slow:
            connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("first_request", [False, True], ids=["new connection", "keep-alive connection"])
def test_a_trickled_body_gets_408_at_the_deadline_however_slowly_it_comes(server, first_request):
    body = predict_body(batch=2)
    with connect(server.url) as connection:
        if first_request:  # the deadline also holds for the next request on a kept-alive connection
            connection.sendall(request_bytes("GET", "/v1/models/dcgan"))
            assert read_response(connection.makefile("rb"))[0] == 200
        connection.sendall(request_bytes("POST", PREDICT, b"", [f"Content-Length: {len(body)}"]))
        started = time.monotonic()
        for position in range(40):  # bounded: 40 bytes over at most 4 s, the deadline is 3 s
            try:
                connection.send(body[position : position + 1])
            except OSError:
                break
            time.sleep(0.1)
        response = read_response(connection.makefile("rb"))
        assert response[0] == 408 and response[1]["connection"] == "close"
        assert 2.5 < time.monotonic() - started < 5.0
        assert connection.recv(1) == b""


# -- framing ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "headers, message",
    [
        (["Content-Length: 2", "Content-Length: 3"], "Content-Length"),
        (["Content-Length: \u00b2".encode("utf-8").decode("latin-1")], "Content-Length"),
        (["Content-Length: 2", "Transfer-Encoding: chunked"], "malformed HTTP request"),
    ],
    ids=["duplicate", "non-ASCII digit", "length and chunked"],
)
def test_ambiguous_content_length_is_a_json_400_and_closes(server, headers, message):
    status, response_headers, body = exchange(server.url, request_bytes("POST", PREDICT, b"{}", headers))
    assert status == 400 and response_headers["connection"] == "close"
    assert message in json.loads(body)["error"]


@pytest.mark.slow
def test_head_has_no_body_and_the_connection_stays_in_step(server):
    with connect(server.url) as connection:
        connection.sendall(request_bytes("HEAD", "/v1/models/dcgan") + request_bytes("GET", "/v1/models/dcgan"))
        stream = connection.makefile("rb")
        head_status, head_headers, _ = read_response(stream, "HEAD")
        get_status, _, get_body = read_response(stream, "GET")  # parses only if HEAD sent no body
    assert head_status == 400 and int(head_headers["content-length"]) > 0  # TF Serving answers GET alone
    assert get_status == 200 and json.loads(get_body)["model_version_status"][0]["version"] == "1"


@pytest.mark.slow
def test_chunked_bodies_are_read_up_to_the_body_cap(server):
    body = predict_body()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, _, answer = exchange(server.url, request_bytes("POST", PREDICT, chunked, ["Transfer-Encoding: chunked"]))
    assert status == 200 and len(json.loads(answer)["predictions"]) == 1
    big = b"".join(b"%x\r\n%s\r\n" % (50_000, b" " * 50_000) for _ in range(5)) + b"0\r\n\r\n"
    status, headers, answer = exchange(server.url, request_bytes("POST", PREDICT, big, ["Transfer-Encoding: chunked"]))
    assert status == 413 and headers["connection"] == "close" and "limit of 200000 bytes" in json.loads(answer)["error"]
    status, headers, answer = exchange(server.url, request_bytes("POST", PREDICT, b"", ["Content-Length: 200001"]))
    assert status == 413 and "request body of 200001 bytes" in json.loads(answer)["error"]


@pytest.mark.slow
def test_wrong_method_on_the_metrics_path_is_405_with_allow(server):
    status, headers, body = exchange(server.url, request_bytes("POST", "/monitoring/prometheus/metrics", b"{}"))
    assert status == 405 and headers["allow"] == "GET, HEAD" and "error" in json.loads(body)


@pytest.mark.slow
def test_tensorflow_serving_status_codes_pass_through_the_server(server):
    assert exchange(server.url, request_bytes("DELETE", "/v1/models/dcgan"))[0] == 400
    assert exchange(server.url, request_bytes("GET", "/v1/models/dc%67an/versions/01"))[0] == 200
    status, _, body = exchange(server.url, request_bytes("GET", "/v1/models/dc%2567an"))  # decoded once only: "dc%67an"
    assert status == 404 and "Latest(dc%67an)" in json.loads(body)["error"]


# -- logs and metrics -------------------------------------------------------------------------------


@pytest.mark.slow
def test_client_disconnects_print_no_traceback_and_each_request_logs_one_line(server):
    before = len(server.output)
    body = predict_body(batch=64)
    for _ in range(10):  # send a request for 64 digits and leave before the answer, or halfway through the body
        with connect(server.url) as connection:
            connection.sendall(request_bytes("POST", PREDICT, body))
        with connect(server.url) as connection:
            connection.sendall(request_bytes("POST", PREDICT, b"", [f"Content-Length: {len(body)}"]) + body[:100])
    for _ in range(3):
        assert exchange(server.url, request_bytes("GET", "/v1/models/dcgan/metadata"))[0] == 200
    time.sleep(1.0)  # the abandoned predictions finish on the server
    log = "".join(server.output[before:])
    assert "Traceback" not in log and "Error" not in log, log[-3000:]
    assert len(re.findall(r'"GET /v1/models/dcgan/metadata HTTP/1.1" 200', log)) == 3


def answered_count(metrics_text, signature, status):
    """Requests of `signature` answered with `status`, from a /metrics scrape (0 before the first)."""
    match = re.search(rf'^keras_dcgan_serve_requests_total\{{signature="{signature}",status="{status}"\}} (\S+)', metrics_text, re.M)
    return float(match[1]) if match else 0.0


@pytest.mark.slow
def test_prometheus_metrics_count_requests_by_signature_and_status(server):
    def scrape():
        status, headers, body = exchange(server.url, request_bytes("GET", "/monitoring/prometheus/metrics"))
        assert status == 200 and headers["content-type"].startswith("text/plain")
        return body.decode()

    before = scrape()
    for _ in range(3):
        assert exchange(server.url, request_bytes("POST", PREDICT, predict_body()))[0] == 200
    assert exchange(server.url, request_bytes("POST", PREDICT, b'{"instances": [[0.5]]}'))[0] == 400
    after = scrape()
    assert answered_count(after, "serving_default", 200) - answered_count(before, "serving_default", 200) == 3
    assert answered_count(after, "serving_default", 400) - answered_count(before, "serving_default", 400) == 1
    assert 'keras_dcgan_serve_request_seconds_bucket{le="+Inf",signature="serving_default"}' in after
    assert "keras_dcgan_serve_requests_in_flight 0.0" in after
    assert 'keras_dcgan_serve_model_version{model="dcgan"} 1.0' in after


@pytest.mark.slow
def test_metrics_and_access_log_are_off_unless_asked_and_ctrl_c_stops_cleanly(exported_model):
    plain = start_keras_dcgan_serve(exported_model.onnx_path)
    try:
        assert exchange(plain.url, request_bytes("GET", "/monitoring/prometheus/metrics"))[0] == 404
        assert exchange(plain.url, request_bytes("GET", "/v1/models/dcgan"))[0] == 200
        plain.process.send_signal(signal.SIGINT)
        assert plain.process.wait(15) == 0
    finally:
        plain.stop()
    assert not any("HTTP/1.1" in line for line in plain.output) and "stopped\n" in "".join(plain.output)


# -- graceful shutdown --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_answers_every_request_it_received_and_exits_0(exported_model, workers):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--access-log", "--drain-timeout", 10, "--workers", workers)
    request = request_bytes("POST", PREDICT, predict_body(batch=4))
    outcomes = []  # per client: (answers, closes) where a close is a request sent on a connection the server had closed
    stop_at = time.monotonic() + 20

    def keep_alive_client():
        answers, closed_before_answer, last_headers = 0, 0, {}
        with connect(server.url) as connection:
            stream = connection.makefile("rb")
            while time.monotonic() < stop_at:
                try:
                    connection.sendall(request)
                    response = read_response(stream)
                except OSError:
                    response = None
                if response is None:
                    closed_before_answer += 1
                    break
                assert response[0] == 200
                answers += 1
                last_headers = response[1]
                if response[1].get("connection") == "close":
                    break
        outcomes.append((answers, closed_before_answer, last_headers.get("connection")))

    body = predict_body(batch=2)
    mid_body = connect(server.url)  # the server has begun to read this request when the signal comes
    mid_body.sendall(request_bytes("POST", PREDICT, b"", [f"Content-Length: {len(body)}"]) + body[:20])
    mid_headers = connect(server.url)  # and this one's headers are still arriving
    mid_headers.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: test\r\n")
    clients = [threading.Thread(target=keep_alive_client) for _ in range(5)]
    for client in clients:
        client.start()
    time.sleep(1.5)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    time.sleep(0.5)
    mid_body.sendall(body[20:])
    mid_headers.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    finishing = [read_response(connection.makefile("rb")) for connection in (mid_body, mid_headers)]
    for client in clients:
        client.join(20)
    assert server.process.wait(15) == 0 and time.monotonic() - signalled < 10
    for connection in (mid_body, mid_headers):
        connection.close()

    for status, headers, answer in finishing:
        assert status == 200 and headers["connection"] == "close" and len(json.loads(answer)["predictions"]) == 2
    assert len(outcomes) == 5 and all(answers > 0 for answers, _, _ in outcomes)
    # A keep-alive connection ends either with an answer saying "Connection: close" (its request was in
    # flight) or, idle between two requests, closed by the server before it read the next one.
    assert all((connection == "close") != (closed == 1) for _, closed, connection in outcomes), outcomes
    # older uvicorn releases log the path percent-encoded; 0.55 logs it as sent
    answered_by_server = len(re.findall(r'"POST /v1/models/dcgan(?:%3A|:)predict HTTP/1.1" 200', "".join(server.output)))
    assert answered_by_server == sum(answers for answers, _, _ in outcomes) + 2, "an answer the server sent was lost"
    assert "stopped\n" in "".join(server.output)


# -- worker processes ---------------------------------------------------------------------------------


def worker_pids(server):
    """The server's worker processes: its children spawned by multiprocessing (not its resource tracker)."""
    pids = []
    for task in os.listdir(f"/proc/{server.process.pid}/task"):
        with open(f"/proc/{server.process.pid}/task/{task}/children") as children:
            pids += [int(pid) for pid in children.read().split()]
    workers = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # it exited since it was listed
            if b"spawn_main" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
    return sorted(workers)


def process_holding(connection, candidates):
    """Which of `candidates` holds the server end of this client connection (from /proc/net/tcp and their fds)."""
    client_port, server_port = connection.getsockname()[1], connection.getpeername()[1]
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            fields = row.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if (local, remote) == (server_port, client_port):
                inode = fields[9]
                break
        else:
            raise AssertionError("the connection is not in /proc/net/tcp")
    for pid in candidates:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
    raise AssertionError(f"no process of {candidates} holds the connection")


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_metrics_keep_what_it_answered(exported_model):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--workers", 2, "--metrics")
    try:
        workers = worker_pids(server)
        assert len(workers) == 2
        request = request_bytes("POST", PREDICT, predict_body())
        with connect(server.url) as connection:  # one keep-alive connection: every answer from one worker
            stream = connection.makefile("rb")
            for _ in range(5):
                connection.sendall(request)
                assert read_response(stream)[0] == 200
            killed = process_holding(connection, workers)
            os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(replaced := worker_pids(server)) < 2 or killed in replaced:
            assert time.monotonic() < deadline, f"the killed worker {killed} was not replaced: {replaced}"
            time.sleep(0.2)
        for _ in range(5):  # answered by the survivor or the replacement
            assert exchange(server.url, request)[0] == 200
        status, _, metrics = exchange(server.url, request_bytes("GET", "/monitoring/prometheus/metrics"))
        assert status == 200
        text = metrics.decode()
        # Summed over the workers, the dead one included: a scrape of one worker's own counts would miss some.
        assert 'keras_dcgan_serve_requests_total{signature="serving_default",status="200"} 10.0' in text, text
        assert "keras_dcgan_serve_requests_in_flight 0.0" in text
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_sighup_replaces_the_workers_but_one_that_cannot_load_a_tampered_file_leaves_the_old_serving(exported_model, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(pathlib.Path(exported_model.onnx_path).parent, export)
    server = start_keras_dcgan_serve(export / "generator.onnx", "--workers", 2)
    try:
        first = worker_pids(server)
        server.process.send_signal(signal.SIGHUP)  # replace the workers one by one, with the file intact
        deadline = time.monotonic() + 60
        while set(replaced := worker_pids(server)) & set(first) or len(replaced) < 2:
            assert time.monotonic() < deadline, f"the workers {first} were not replaced: {replaced}"
            time.sleep(0.2)
        assert exchange(server.url, request_bytes("POST", PREDICT, predict_body()))[0] == 200

        with open(export / "generator.onnx", "r+b") as model:  # one byte changed: its SHA-256 no longer matches the manifest
            model.seek(-1, os.SEEK_END)
            last = model.read(1)
            model.seek(-1, os.SEEK_END)
            model.write(bytes([last[0] ^ 0xFF]))
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "could not load" not in "".join(server.output):
            assert time.monotonic() < deadline, "".join(server.output)[-2000:]
            time.sleep(0.2)
        assert "SHA-256" in "".join(server.output)
        while worker_pids(server) != replaced:  # the failed worker is reaped; the old ones keep serving the model they had loaded
            assert time.monotonic() < deadline, f"workers {worker_pids(server)}, expected the old {replaced}"
            time.sleep(0.2)
        for _ in range(3):
            assert exchange(server.url, request_bytes("POST", PREDICT, predict_body()))[0] == 200
        assert server.stop() == 0
    finally:
        server.stop()
