"""`keras-dcgan serve` against clients that misbehave or leave, and against signals, over real sockets on 127.0.0.1.

Each test here is an attack once found to work: resets while the server drains, SIGHUP, a client
leaving a pipeline, abandoned predictions, a header without end. The servers run in processes
without TensorFlow; every loop is bounded in count and time.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import threading
import time
import urllib.parse
from collections import Counter

import pytest

from test_serving_http import PREDICT, answered_count, connect, exchange, predict_body, read_response, request_bytes, worker_pids
from test_serving_support import start_keras_dcgan_serve

METRICS = "/monitoring/prometheus/metrics"


def scrape(server):
    status, _, body = exchange(server.url, request_bytes("GET", METRICS))
    assert status == 200
    return body.decode()


def wait_for_log(server, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in "".join(server.output):
        assert time.monotonic() < deadline, f"{text!r} not logged: {''.join(server.output)[-3000:]}"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_clients_that_reconnect_while_the_server_drains_are_answered_or_refused_never_reset(exported_model, workers):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--workers", workers)
    request = request_bytes("POST", PREDICT, predict_body(batch=4))
    outcomes = Counter()
    stop_at = time.monotonic() + 20

    def client():
        """Requests on keep-alive connections; after an answer saying `Connection: close`, a new connection."""
        connection, sent_on_it = None, 0
        while time.monotonic() < stop_at:
            if connection is None:
                try:
                    connection, sent_on_it = connect(server.url, timeout=10), 0
                except ConnectionRefusedError:
                    outcomes["refused"] += 1
                    return
            sent_on_it += 1
            try:
                connection.sendall(request)
                response = read_response(connection.makefile("rb"))
            except OSError as error:
                response = type(error).__name__
            if isinstance(response, tuple) and response[0] == 200:
                outcomes["answered"] += 1
            else:  # EOF or an error after the request was sent
                outcomes[f"{'new' if sent_on_it == 1 else 'kept-alive'} connection: {response or 'EOF'}"] += 1
                if sent_on_it == 1:
                    return
            if not isinstance(response, tuple) or response[1].get("connection") == "close":
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    clients = [threading.Thread(target=client) for _ in range(5)]
    for thread in clients:
        thread.start()
    time.sleep(2)
    server.process.send_signal(signal.SIGTERM)
    for thread in clients:
        thread.join(30)
    assert server.process.wait(15) == 0
    # A client whose connection the kernel accepted while the server drained sent its request on
    # it: it must be answered, or its connection refused, never reset.
    assert not [outcome for outcome in outcomes if outcome.startswith("new connection")], outcomes
    assert outcomes["refused"] == 5 and outcomes["answered"] > 0, outcomes


def tampered(onnx_path):
    """Flip the last byte of the file: its SHA-256 no longer matches the manifest."""
    with open(onnx_path, "r+b") as model:
        model.seek(-1, os.SEEK_END)
        last = model.read(1)
        model.seek(-1, os.SEEK_END)
        model.write(bytes([last[0] ^ 0xFF]))


@pytest.mark.slow
def test_sighup_reloads_a_lone_server_process_while_its_requests_finish(exported_model, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(pathlib.Path(exported_model.onnx_path).parent, export)
    server = start_keras_dcgan_serve(export / "generator.onnx", "--workers", 1, "--max-batch", 256, "--max-body-bytes", 2_000_000)
    try:
        request = request_bytes("POST", PREDICT, predict_body(batch=256))
        _, _, before = exchange(server.url, request)
        in_flight = [connect(server.url) for _ in range(5)]
        for connection in in_flight:
            connection.sendall(request)
        time.sleep(0.2)  # read by the server and queued for the model
        server.process.send_signal(signal.SIGHUP)
        for connection in in_flight:
            with connection:
                status, _, body = read_response(connection.makefile("rb"))
                assert status == 200 and body == before
        wait_for_log(server, "reloaded")
        assert exchange(server.url, request)[2] == before

        tampered(export / "generator.onnx")
        server.process.send_signal(signal.SIGHUP)
        wait_for_log(server, "could not reload")
        assert "SHA-256" in "".join(server.output) and server.process.poll() is None
        assert exchange(server.url, request)[2] == before  # the model loaded before still serves
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_sighup_to_a_worker_is_ignored_with_a_log_line_and_to_the_supervisor_reloads(exported_model):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--workers", 2)
    try:
        workers = worker_pids(server)
        os.kill(workers[0], signal.SIGHUP)
        wait_for_log(server, f"SIGHUP ignored by worker process {workers[0]}")
        for _ in range(4):
            assert exchange(server.url, request_bytes("POST", PREDICT, predict_body()))[0] == 200
        assert worker_pids(server) == workers  # none died and was replaced
        server.process.send_signal(signal.SIGHUP)  # to the supervisor: the same reload, and log lines, as one process's
        wait_for_log(server, "SIGHUP: reloading")
        wait_for_log(server, "reloaded", timeout=60)
        assert not set(worker_pids(server)) & set(workers)
        assert exchange(server.url, request_bytes("POST", PREDICT, predict_body()))[0] == 200
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_client_that_leaves_a_pipeline_it_cannot_read_fast_costs_no_traceback(exported_model, workers):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--workers", workers, "--max-batch", 256, "--max-body-bytes", 2_000_000)
    try:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the answers back up in the server's write buffer
        host, port = urllib.parse.urlsplit(server.url).netloc.rsplit(":", 1)
        client.connect((host, int(port)))
        client.sendall(request_bytes("POST", PREDICT, predict_body(batch=256)) * 10)
        time.sleep(2)
        client.close()
        time.sleep(2)
        assert exchange(server.url, request_bytes("GET", "/v1/models/dcgan"))[0] == 200
        log = "".join(server.output)
        assert "Traceback" not in log and "Exception" not in log, log[-3000:]
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_predictions_whose_clients_left_are_dropped_uncomputed_and_counted_499(exported_model):
    server = start_keras_dcgan_serve(
        exported_model.onnx_path, "--workers", 1, "--metrics", "--max-batch", 256, "--max-body-bytes", 2_000_000
    )
    try:
        request = request_bytes("POST", PREDICT, predict_body(batch=256))
        leaving = [connect(server.url) for _ in range(30)]
        for connection in leaving:
            connection.sendall(request)
        time.sleep(0.02)
        for connection in leaving:
            connection.close()
        assert exchange(server.url, request_bytes("POST", PREDICT, predict_body()))[0] == 200
        deadline = time.monotonic() + 60
        while (answered := answered_count(text := scrape(server), "serving_default", 200)) + (
            abandoned := answered_count(text, "serving_default", 499)
        ) < 31:
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        # Each batch-256 call takes tens of ms; the 30 clients left within a millisecond, while
        # the first calls ran. Those still queued then were dropped.
        assert abandoned >= 1 and answered + abandoned == 31, text
        assert "keras_dcgan_serve_requests_in_flight 0.0" in text
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(exported_model):
    process = start_keras_dcgan_serve(exported_model.onnx_path, "--metrics", "--max-body-bytes", 400_000)
    yield process
    process.stop()


@pytest.mark.slow
def test_headers_beyond_64_kib_are_a_json_431_and_close_the_connection(server):
    before = answered_count(scrape(server), "", 431)
    with connect(server.url) as connection:  # one header that never ends
        connection.sendall(b"GET /v1/models/dcgan HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 100_000)
        status, headers, body = read_response(connection.makefile("rb"))
        assert status == 431 and headers["connection"] == "close"
        assert "more than 65536 bytes" in json.loads(body)["error"]
        assert connection.recv(1) == b""
    many = [f"X-Padding-{index}: {'b' * 8000}" for index in range(10)]  # 80 KB of headers, each of them short
    status, _, body = exchange(server.url, request_bytes("GET", "/v1/models/dcgan", headers=many))
    assert status == 431 and "error" in json.loads(body)
    assert answered_count(scrape(server), "", 431) - before == 2


@pytest.mark.slow
def test_headers_under_the_cap_and_pipelined_large_bodies_are_served(server):
    near_cap = [f"X-Padding-{index}: {'c' * 7000}" for index in range(9)]  # 63 KB
    assert exchange(server.url, request_bytes("GET", "/v1/models/dcgan", headers=near_cap))[0] == 200
    body = predict_body(batch=8)
    padded = body[:-1] + b" " * (300_000 - len(body)) + b"}"  # JSON whitespace: a body of 300 KB
    with connect(server.url) as connection:  # bodies far beyond the header cap must not count against the next request's headers
        connection.sendall(request_bytes("POST", PREDICT, padded) * 3)
        stream = connection.makefile("rb")
        for _ in range(3):
            status, _, answer = read_response(stream)
            assert status == 200 and len(json.loads(answer)["predictions"]) == 8
    assert not re.search("Traceback|Exception", "".join(server.output))
