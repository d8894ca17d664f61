"""Readiness for orchestrators, on real `keras-dcgan serve` processes, worker processes and SIGTERM.

Each probe opens a new connection, as the kubelet's HTTP probes do. Every loop is bounded in
count and time.
"""

import json
import os
import signal
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from helpers import REPO_ROOT
from test_serving_http import PREDICT, connect, predict_body, read_response, request_bytes, worker_pids
from test_serving_support import free_port, start_keras_dcgan_serve, tf_free_cli

READY = "/v2/health/ready"
LIVE = "/v2/health/live"


def probe(url, path, timeout=2):
    """(status, error message or "") of GET `path` on a new connection; (None, why) when nothing answers."""
    try:
        with connect(url, timeout) as connection:
            connection.sendall(request_bytes("GET", path, headers=["Connection: close"]))
            response = read_response(connection.makefile("rb"), "GET")
    except OSError as error:
        return None, type(error).__name__
    if response is None:
        return None, "closed"
    status, _, body = response
    return status, json.loads(body).get("error", "") if body else ""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ready_is_false_from_the_stop_signal_on_while_requests_in_flight_finish(exported_model, workers):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--workers", workers, "--drain-timeout", 10)
    try:
        assert probe(server.url, READY) == (200, "")
        body = predict_body(batch=2)
        in_flight = connect(server.url)  # a predict whose body is still arriving when the signal comes
        in_flight.sendall(request_bytes("POST", PREDICT, b"", [f"Content-Length: {len(body)}"]) + body[:20])
        readiness = connect(server.url)  # and a ready probe whose headers are
        readiness.sendall(b"GET " + READY.encode() + b" HTTP/1.1\r\nHost: test\r\n")
        time.sleep(0.5)  # both read by a worker
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.7)  # uvicorn's supervisor looks at signals every 0.5 s
        in_flight.sendall(body[20:])
        readiness.sendall(b"\r\n")
        predicted = read_response(in_flight.makefile("rb"))
        ready = read_response(readiness.makefile("rb"), "GET")
        assert server.process.wait(15) == 0
    finally:
        server.stop()
    assert predicted[0] == 200 and len(json.loads(predicted[2])["predictions"]) == 2
    assert ready[0] == 503 and "draining" in json.loads(ready[2])["error"] and ready[1]["connection"] == "close"


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_polling_client_sees_ready_go_false_before_the_server_stops_answering(exported_model, workers):
    """From before the start to after the exit: not ready while loading, ready, then not ready during the shutdown delay."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    polls = []  # (seconds since the signal or None before it, route, status, message)
    signalled = []
    stop_polling = threading.Event()

    def poll():
        deadline = time.monotonic() + 90
        while not stop_polling.is_set() and time.monotonic() < deadline:
            for route in (READY, LIVE):
                status, message = probe(url, route, timeout=1)
                polls.append((time.monotonic() - signalled[0] if signalled else None, route, status, message))
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        server = start_keras_dcgan_serve(
            exported_model.onnx_path, "--port", port, "--workers", workers, "--shutdown-delay", 2, "--drain-timeout", 10
        )
        time.sleep(0.5)
        signalled.append(time.monotonic())
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(20)
        exited = time.monotonic() - signalled[0]
    finally:
        stop_polling.set()
        poller.join(10)
        server.stop()
    assert code == 0 and exited >= 2  # it served through the delay

    ready = [(when, status, message) for when, route, status, message in polls if route == READY and status is not None]
    before = [status for when, status, _ in ready if when is None]
    after = [(status, message) for when, status, message in ready if when is not None and when > 0.6]  # the supervisor's signal poll
    # Before the signal: perhaps 503 while a worker still loads, then 200, never back.
    assert 200 in before and before[before.index(200) :] == [200] * (len(before) - before.index(200)), before
    assert all("loading" in message for when, status, message in ready if when is None and status == 503)
    # After it: 503 draining, answered while the server still answers everything else, until it stops answering.
    assert after and all(status == 503 and "draining" in message for status, message in after), after
    assert any(route == LIVE and status == 200 and when is not None and when > 0.6 for when, route, status, _ in polls)
    assert polls[-1][2] is None  # at the end nothing answers: the server has gone


def wait_for(condition, seconds, what):
    """The first truthy value of `condition()`, polled for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {seconds} s")
        time.sleep(0.01)
    return value


@pytest.mark.slow
def test_ready_waits_until_every_worker_has_loaded_the_model(exported_model):
    """One worker held stopped before it loads: its peer serves, and answers not ready, until it is let go."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        tf_free_cli("serve", "--onnx", exported_model.onnx_path, "--port", port, "--workers", 2),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT,
    )
    server = SimpleNamespace(process=process)
    held = None
    try:
        held = wait_for(lambda: len(pids := worker_pids(server)) == 2 and pids[-1], 30, "two workers did not start")
        os.kill(held, signal.SIGSTOP)  # spawned last: still importing onnxruntime
        first = wait_for(lambda: (answer := probe(url, READY))[0] and answer, 60, "the other worker did not answer")
        while_held = [probe(url, READY) for _ in range(10)]
        live = probe(url, LIVE)
        os.kill(held, signal.SIGCONT)
        wait_for(lambda: probe(url, READY)[0] == 200, 60, "the server did not become ready once both workers loaded")
    finally:
        if held is not None:
            os.kill(held, signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert first[0] == 503 and "loading" in first[1], first
    assert all(status == 503 and "loading" in message for status, message in while_held), while_held
    assert live == (200, "")
