"""Server-side batching: concurrent predictions share model calls, and each still gets exactly its own answer.

`ModelBatcher` is checked on its own first (its queue, in an event loop with real threads),
then `keras-dcgan serve` over real sockets on 127.0.0.1, in a process without TensorFlow.
Every loop is bounded in count and time.
"""

import asyncio
import base64
import json
import re
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.batching import ModelBatcher
from keras_dcgan.serving.session import GeneratorSession
from test_serving_http import PREDICT, answered_count, connect, read_response, request_bytes
from test_serving_support import decode_png, start_keras_dcgan_serve

# onnxruntime may round a row differently inside a larger batch on some CPUs; rows of different
# seeds differ by far more than this.
ROW_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Item:
    rows: int
    name: str


def run_with_batcher(scenario, run_batch, **options):
    """`scenario(batcher)`, a coroutine function, in a fresh event loop; the batcher is shut down after."""
    batcher = ModelBatcher(run_batch, **options)
    try:
        return asyncio.run(asyncio.wait_for(scenario(batcher), 10))
    finally:
        batcher.shutdown()


def recording(calls, hold=None):
    """A run_batch that records each call's item names, answers each item with its name, and waits for `hold` if given."""

    def run_batch(items):
        calls.append([item.name for item in items])
        if hold is not None:
            hold.wait(5)  # keeps the model thread busy while the test queues more
        return [item.name for item in items]

    return run_batch


def test_requests_that_wait_for_a_busy_model_share_its_next_call():
    release = threading.Event()
    calls = []

    async def scenario(batcher):
        first = asyncio.ensure_future(batcher.submit(Item(1, "first")))
        await asyncio.sleep(0.05)  # the first call has started and holds the only thread
        waiting = [asyncio.ensure_future(batcher.submit(Item(rows, name))) for rows, name in [(2, "a"), (3, "b"), (1, "c"), (1, "d")]]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *waiting)

    answers = run_with_batcher(scenario, recording(calls, hold=release), threads=1, max_rows=5)
    assert answers == ["first", "a", "b", "c", "d"]
    # In arrival order, as many as fit in 5 rows (a + b), then the rest: the queue is never reordered.
    assert calls == [["first"], ["a", "b"], ["c", "d"]]


def test_a_request_alone_starts_at_once_and_one_larger_than_the_cap_runs_alone():
    calls = []

    async def scenario(batcher):
        started = time.perf_counter()
        assert await batcher.submit(Item(1, "alone")) == "alone"
        alone_seconds = time.perf_counter() - started
        assert await batcher.submit(Item(10, "large")) == "large"
        return alone_seconds

    alone_seconds = run_with_batcher(scenario, recording(calls), threads=2, max_rows=4)
    assert calls == [["alone"], ["large"]] and alone_seconds < 1.0


def test_requests_read_in_the_same_pass_of_the_loop_share_a_call_even_with_threads_free():
    calls = []

    async def scenario(batcher):
        return await asyncio.gather(*(batcher.submit(Item(1, name)) for name in "abc"))

    assert run_with_batcher(scenario, recording(calls), threads=2, max_rows=100) == ["a", "b", "c"]
    assert calls == [["a", "b", "c"]]


def test_a_failing_model_call_fails_each_request_of_its_batch_and_the_batcher_goes_on():
    def run_batch(items):
        if any(item.name == "poison" for item in items):
            raise RuntimeError("onnxruntime failed")
        return [item.name for item in items]

    async def scenario(batcher):
        with pytest.raises(RuntimeError, match="onnxruntime failed"):
            await batcher.submit(Item(1, "poison"))
        return await batcher.submit(Item(1, "fine"))

    assert run_with_batcher(scenario, run_batch, threads=1, max_rows=100) == "fine"


def test_without_merging_every_call_takes_one_request():
    release = threading.Event()
    calls = []

    async def scenario(batcher):
        futures = [asyncio.ensure_future(batcher.submit(Item(1, str(index)))) for index in range(4)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*futures)

    run_with_batcher(scenario, recording(calls, hold=release), threads=1, max_rows=100, merge=False)
    assert calls == [["0"], ["1"], ["2"], ["3"]]


def test_with_no_threads_calls_run_on_the_loop_and_requests_read_during_a_call_share_the_next():
    calls, threads, arrived = [], [], []

    async def scenario(batcher):
        def run_batch(items):
            calls.append([item.name for item in items])
            threads.append(threading.get_ident())
            if not arrived:  # requests the loop reads while this call runs, as a worker's socket would hold them
                arrived.extend(asyncio.ensure_future(batcher.submit(Item(1, name))) for name in "abc")
            return [item.name for item in items]

        batcher.run_batch = run_batch
        first = await batcher.submit(Item(1, "first"))
        return [first, *await asyncio.gather(*arrived)]

    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    assert run_with_batcher(scenario, None, threads=0, max_rows=100) == ["first", "a", "b", "c"]
    assert calls == [["first"], ["a", "b", "c"]] and set(threads) == {loop_thread}


# -- keras-dcgan serve ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session(exported_model):
    return GeneratorSession(exported_model.onnx_path)


@pytest.fixture(scope="module")
def server(exported_model):
    process = start_keras_dcgan_serve(exported_model.onnx_path, "--metrics", "--max-batch", 64)
    yield process
    process.stop()


def predict_request(signature, seeds, latent_dim, columnar=False):
    if signature == "generate_from_seeds":
        inputs = [int(seed) for seed in seeds]
    else:
        inputs = latents_from_seeds(seeds, latent_dim).tolist()
    body = {"signature_name": signature, "inputs" if columnar else "instances": inputs}
    return request_bytes("POST", PREDICT, json.dumps(body).encode())


def images_of(signature, answer):
    values = answer["outputs"] if "outputs" in answer else answer["predictions"]
    if signature == "generate_png":
        return np.stack([decode_png(base64.b64decode(value["b64"])) for value in values])
    return np.asarray(values, np.float32)


def run_all(threads, timeout):
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


def scrape(server):
    with connect(server.url) as connection:
        connection.sendall(request_bytes("GET", "/monitoring/prometheus/metrics"))
        status, _, body = read_response(connection.makefile("rb"), "GET")
    assert status == 200
    return body.decode()


def requests_read(metrics_text, signature):
    """Requests of `signature` read by the server: in flight (any signature) or answered."""
    in_flight = float(re.search(r"^keras_dcgan_serve_requests_in_flight (\S+)", metrics_text, re.M)[1])
    return in_flight + answered_count(metrics_text, signature, 200)


def merged_model_calls(metrics_text):
    """Model calls that took more than one request, from the histogram of requests per call."""
    total = float(re.search(r"keras_dcgan_serve_batch_requests_count (\S+)", metrics_text)[1])
    alone = float(re.search(r'keras_dcgan_serve_batch_requests_bucket\{le="1\.0"\} (\S+)', metrics_text)[1])
    return total - alone


@pytest.mark.slow
def test_concurrent_requests_of_any_size_and_signature_each_get_exactly_their_own_rows(server, session):
    check_concurrent_requests_get_their_own_rows(server, session, ROW_TOLERANCE)


def check_concurrent_requests_get_their_own_rows(server, session, tolerance):
    """12 clients' predictions of 1 to 5 rows, all signatures: each answer is `session`'s images of its seeds, and calls were shared."""
    signatures = ["serving_default", "generate_from_seeds", "generate_png"]
    merged_before = merged_model_calls(scrape(server))
    failures = []
    deadline = time.monotonic() + 60

    def client(worker):
        with connect(server.url, timeout=30) as connection:
            stream = connection.makefile("rb")
            for round_number in range(12):
                if time.monotonic() > deadline:
                    failures.append(f"client {worker}: out of time")
                    return
                rows = 1 + (worker + round_number) % 5  # 1 to 5 rows, different in every concurrent request
                seeds = [10_000 * worker + 100 * round_number + row for row in range(rows)]  # distinct in every request
                signature = signatures[(worker + round_number) % len(signatures)]
                connection.sendall(predict_request(signature, seeds, session.latent_dim, columnar=round_number % 2 == 1))
                status, _, body = read_response(stream)
                if status != 200:
                    failures.append(f"client {worker} round {round_number}: {status} {body[:200]}")
                    continue
                got = images_of(signature, json.loads(body))
                expected = session.generate_from_seeds(seeds)  # a model call of this request alone
                if signature == "generate_png":
                    expected = np.stack([decode_png(png) for png in session.png_bytes(expected)])
                    same = got.shape == expected.shape and np.abs(got.astype(int) - expected.astype(int)).max() <= 1
                else:
                    same = got.shape == expected.shape and np.abs(got - expected).max() <= tolerance
                if not same:
                    failures.append(f"client {worker} round {round_number}: not the images of seeds {seeds}")

    run_all([threading.Thread(target=client, args=(worker,)) for worker in range(12)], timeout=90)
    assert not failures, failures[:5]
    # 12 clients on a model call at a time per process, calls of milliseconds: requests waited, and shared calls.
    assert merged_model_calls(scrape(server)) > merged_before


@pytest.mark.slow
def test_a_malformed_request_among_concurrent_good_ones_gets_its_400_and_the_good_ones_their_images(server, session):
    bad_requests = {
        "invalid JSON": (request_bytes("POST", PREDICT, b'{"instances": [[0.5,'), "invalid JSON"),
        "wrong width": (request_bytes("POST", PREDICT, b'{"instances": [[0.5, 0.5]]}'), "latent must have shape"),
        "NaN": (request_bytes("POST", PREDICT, json.dumps({"instances": [[float("nan")] * session.latent_dim]}).encode()), "NaN or Inf"),
        "huge seed": (request_bytes("POST", PREDICT, b'{"signature_name": "generate_from_seeds", "instances": [4294967296]}'), "seed"),
    }
    results = {}

    def good_client(worker):
        seeds = [500 + 10 * worker, 501 + 10 * worker]
        with connect(server.url, timeout=30) as connection:
            stream = connection.makefile("rb")
            for round_number in range(6):
                connection.sendall(predict_request("serving_default", seeds, session.latent_dim))
                status, _, body = read_response(stream)
                ok = status == 200 and np.abs(images_of("serving_default", json.loads(body)) - session.generate_from_seeds(seeds)).max() <= ROW_TOLERANCE
                results[(worker, round_number)] = ok

    def bad_client(name):
        request, _ = bad_requests[name]
        with connect(server.url, timeout=30) as connection:
            stream = connection.makefile("rb")
            for round_number in range(6):
                connection.sendall(request)
                status, _, body = read_response(stream)
                results[(name, round_number)] = (status, json.loads(body)["error"])

    threads = [threading.Thread(target=good_client, args=(worker,)) for worker in range(6)]
    run_all(threads + [threading.Thread(target=bad_client, args=(name,)) for name in bad_requests], timeout=60)
    assert all(results[(worker, round_number)] for worker in range(6) for round_number in range(6))
    for name, (_, expected) in bad_requests.items():
        for round_number in range(6):
            status, message = results[(name, round_number)]
            assert status == 400 and expected in message, (name, status, message)


@pytest.mark.slow
def test_predictions_queued_at_sigterm_are_answered(exported_model, session):
    # One request per model call, each of 64 rows: the 10 requests queue on 2 model threads.
    server = start_keras_dcgan_serve(
        exported_model.onnx_path, "--max-batch-rows", 64, "--drain-timeout", 20, "--metrics"
    )
    seeds = {client: list(range(1000 * client, 1000 * client + 64)) for client in range(10)}
    connections = {client: connect(server.url, timeout=30) for client in seeds}
    try:
        for client, connection in connections.items():
            connection.sendall(predict_request("generate_from_seeds", seeds[client], session.latent_dim))
        # SIGTERM once every request was read by a worker: one still in the listen backlog would
        # be reset by the kernel, as by any server that stops accepting.
        deadline = time.monotonic() + 30
        while requests_read(scrape(server), "generate_from_seeds") < len(seeds):
            assert time.monotonic() < deadline, "the server did not read every request within 30 s"
            time.sleep(0.02)
        server.process.send_signal(signal.SIGTERM)
        answers = {client: read_response(connection.makefile("rb")) for client, connection in connections.items()}
        assert server.process.wait(30) == 0
    finally:
        for connection in connections.values():
            connection.close()
        server.stop()
    for client, answer in answers.items():
        assert answer is not None, f"client {client} got no answer"
        status, _, body = answer
        assert status == 200
        assert np.abs(images_of("generate_from_seeds", json.loads(body)) - session.generate_from_seeds(seeds[client])).max() <= ROW_TOLERANCE
    assert "stopped\n" in "".join(server.output)


@pytest.mark.slow
def test_refused_requests_are_counted_in_the_metrics(exported_model):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--metrics", "--max-body-bytes", 1000, "--request-timeout", 1)
    try:
        with connect(server.url) as connection:  # 413: declared too large
            connection.sendall(request_bytes("POST", PREDICT, b"", ["Content-Length: 5000"]))
            assert read_response(connection.makefile("rb"))[0] == 413
        with connect(server.url) as connection:  # 408: the body never completes
            connection.sendall(request_bytes("POST", PREDICT, b"", ["Content-Length: 10"]) + b"{")
            assert read_response(connection.makefile("rb"))[0] == 408
        with connect(server.url) as connection:  # 400: not HTTP
            connection.sendall(b"\x00\x01 nonsense\r\n\r\n")
            assert read_response(connection.makefile("rb"))[0] == 400
        text = scrape(server)
    finally:
        server.stop()
    for status in (400, 408, 413):
        assert f'keras_dcgan_serve_requests_total{{signature="",status="{status}"}} 1.0' in text, text
