"""Bounded runs on loopback: does `keras-dcgan serve` compute predictions whose clients have left?

    python benchmarks/abandoned_requests.py --onnx exports/dcgan/1/generator.onnx --runs 2

Each run starts the server of this checkout (`--metrics`, its default workers), sends N batch-256
predict requests on N connections, closes each 20 ms after it was sent, then times one batch-1
request; after the queue has emptied, it prints that wait and the metrics' counts of answered
(200) and dropped (499) predictions.
"""

import argparse
import json
import re
import socket
import sys
import time
import urllib.parse

import numpy as np

from serve_load import read_answer, start_server, stop_server

SETTLE_SECONDS = 10  # for the requests that did run to finish before the metrics are read


def exchange(address, request):
    with socket.create_connection(address, timeout=60) as connection:
        connection.sendall(request)
        return read_answer(connection.makefile("rb"))


def predict_request(netloc, batch, latent_dim):
    body = json.dumps({"instances": np.random.default_rng(batch).standard_normal((batch, latent_dim)).tolist()}).encode()
    return b"POST /v1/models/dcgan:predict HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s" % (netloc.encode(), len(body), body)


def run(onnx, leaving, latent_dim):
    process, url = start_server(
        [sys.executable, "-m", "keras_dcgan.cli", "serve", "--onnx", onnx, "--port", "0", "--metrics", "--max-batch", "256",
         "--max-body-bytes", "4000000"]
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
        return status, waited, counts
    finally:
        stop_server(process)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--leaving", type=int, default=30, help="batch-256 requests whose clients leave (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 10 or not 1 <= args.leaving <= 200:
        parser.error("--runs must be in [1, 10] and --leaving in [1, 200]: the run stays bounded")
    from keras_dcgan.serving.session import GeneratorSession

    latent_dim = GeneratorSession(args.onnx).latent_dim
    for number in range(1, args.runs + 1):
        status, waited, counts = run(args.onnx, args.leaving, latent_dim)
        print(f"run {number}: batch-1 request answered {status} after {waited:.2f} s; "
              f"predictions answered (200, this batch-1 one included) {counts[200]:.0f}, dropped (499) {counts[499]:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
