"""Bounded runs on loopback: what `keras-dcgan serve` does with clients that leave or reconnect at the wrong time.

    python benchmarks/leaving_clients.py drain --onnx exports/dcgan/1/generator.onnx --workers 2 --runs 5
    python benchmarks/leaving_clients.py abandoned --onnx exports/dcgan/1/generator.onnx --runs 2

Each run starts the server of this checkout.

drain: C clients send predict requests on keep-alive connections and open a new connection
after an answer saying `Connection: close`; SIGTERM after 2 s. Counts per client what it got:
answers, a refused connection, or an error after it sent a request (a reset: the server's kernel
had accepted the connection, and nobody answered it). On a kept-alive connection an EOF or a
reset can also be the HTTP/1.1 race of a request crossing the server's close of an idle
connection: those are counted apart.

abandoned: N batch-256 predict requests on N connections (`--metrics`, the default workers),
each closed 20 ms after it was sent, then one batch-1 request, timed; once the queue has
emptied, the metrics' counts of answered (200) and dropped (499) predictions.
"""

import argparse
import collections
import json
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse

import numpy as np

from serve_load import read_answer, start_server, stop_server

TRIAL_SECONDS = 15  # bound on one drain run's clients
SETTLE_SECONDS = 10  # abandoned: for the requests that did run to finish before the metrics are read


def predict_request(netloc, batch, latent_dim):
    body = json.dumps({"instances": np.random.default_rng(batch).standard_normal((batch, latent_dim)).tolist()}).encode()
    return b"POST /v1/models/dcgan:predict HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s" % (netloc.encode(), len(body), body)


def read_status_and_close(stream):
    """(status, whether the answer says `Connection: close`); EOFError if the connection closed first."""
    status_line = stream.readline()
    if not status_line:
        raise EOFError("closed before an answer")
    length, closing = 0, False
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"connection":
            closing = value.strip().lower() == b"close"
    stream.read(length)
    return int(status_line.split()[1]), closing


def drain(onnx, workers, clients, latent_dim):
    process, url = start_server([sys.executable, "-m", "keras_dcgan.cli", "serve", "--onnx", onnx, "--port", "0", "--workers", str(workers)])
    netloc = urllib.parse.urlsplit(url).netloc
    host, port = netloc.rsplit(":", 1)
    request = predict_request(netloc, 4, latent_dim)
    outcomes = collections.Counter()
    stop_at = time.monotonic() + TRIAL_SECONDS

    def client():
        while time.monotonic() < stop_at:
            try:
                connection = socket.create_connection((host, int(port)), timeout=10)
            except ConnectionRefusedError:
                outcomes["refused"] += 1
                return
            with connection:
                stream = connection.makefile("rb")
                for reused in range(10_000):
                    try:
                        connection.sendall(request)
                        status, closing = read_status_and_close(stream)
                    except (OSError, EOFError) as error:
                        outcomes[f"{'kept-alive' if reused else 'new'} connection: {type(error).__name__}"] += 1
                        if not reused:
                            return
                        break
                    outcomes["answered" if status == 200 else f"status {status}"] += 1
                    if closing or time.monotonic() > stop_at:
                        break

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(TRIAL_SECONDS + 10)
    process.wait(30)
    return ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))


def exchange(address, request):
    with socket.create_connection(address, timeout=60) as connection:
        connection.sendall(request)
        return read_answer(connection.makefile("rb"))


def abandoned(onnx, workers, leaving, latent_dim):
    process, url = start_server(
        [sys.executable, "-m", "keras_dcgan.cli", "serve", "--onnx", onnx, "--port", "0", "--metrics", "--max-batch", "256",
         "--max-body-bytes", "4000000", *(["--workers", str(workers)] if workers else [])]
    )
    try:
        netloc = urllib.parse.urlsplit(url).netloc
        host, port = netloc.rsplit(":", 1)
        address = (host, int(port))
        large = predict_request(netloc, 256, latent_dim)
        sent = []
        for _ in range(leaving):
            connection = socket.create_connection(address)
            connection.sendall(large)
            sent.append((connection, time.monotonic()))
        for connection, at in sent:
            time.sleep(max(0.0, at + 0.02 - time.monotonic()))
            connection.close()
        started = time.monotonic()
        status, _ = exchange(address, predict_request(netloc, 1, latent_dim))
        waited = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        metrics = exchange(address, b"GET /monitoring/prometheus/metrics HTTP/1.1\r\nHost: x\r\n\r\n")[1].decode()
        counts = {
            code: float(match[1]) if (match := re.search(rf'signature="serving_default",status="{code}"\}} (\S+)', metrics)) else 0.0
            for code in (200, 499)
        }
        return (f"batch-1 request answered {status} after {waited:.2f} s; predictions answered (200, this batch-1 one "
                f"included) {counts[200]:.0f}, dropped (499) {counts[499]:.0f}")
    finally:
        stop_server(process)


SCENARIOS = {"drain": drain, "abandoned": abandoned}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--workers", type=int, default=None, help="server processes (default: drain 2, abandoned the server's default)")
    parser.add_argument("--clients", type=int, default=None, help="drain: reconnecting clients (5); abandoned: requests whose clients leave (30)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    clients = args.clients or (5 if args.scenario == "drain" else 30)
    if not 1 <= args.runs <= 20 or not 1 <= clients <= 200:
        parser.error("--runs must be in [1, 20] and --clients in [1, 200]: the run stays bounded")
    workers = args.workers or (2 if args.scenario == "drain" else None)
    from keras_dcgan.serving.session import GeneratorSession

    latent_dim = GeneratorSession(args.onnx).latent_dim
    for number in range(1, args.runs + 1):
        print(f"run {number}: {SCENARIOS[args.scenario](args.onnx, workers, clients, latent_dim)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
