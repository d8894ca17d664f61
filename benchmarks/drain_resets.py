"""Bounded trials on loopback: what clients that reconnect while `keras-dcgan serve` drains get.

    python benchmarks/drain_resets.py --onnx exports/dcgan/1/generator.onnx --workers 2 --trials 5

Each trial starts the server of this checkout, runs C clients that send predict requests on
keep-alive connections and open a new connection after an answer saying `Connection: close`,
sends SIGTERM after 2 s, and counts per client what it got: answers, a refused connection, or
an error after it sent a request (a reset: the server's kernel had accepted the connection, and
nobody answered it). On a kept-alive connection an EOF or a reset can also be the HTTP/1.1 race
of a request crossing the server's close of an idle connection: those are counted apart.
"""

import argparse
import collections
import json
import signal
import socket
import sys
import threading
import time
import urllib.parse

from serve_load import start_server

TRIAL_SECONDS = 15  # bound on one trial's clients


def read_answer(stream):
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


def trial(onnx, workers, clients, latent_dim):
    process, url = start_server([sys.executable, "-m", "keras_dcgan.cli", "serve", "--onnx", onnx, "--port", "0", "--workers", str(workers)])
    host, port = urllib.parse.urlsplit(url).netloc.rsplit(":", 1)
    body = json.dumps({"instances": [[0.0] * latent_dim] * 4}).encode()
    request = b"POST /v1/models/dcgan:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
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
                        status, closing = read_answer(stream)
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
    return outcomes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    if not 1 <= args.trials <= 20 or not 1 <= args.clients <= 64:
        parser.error("--trials must be in [1, 20] and --clients in [1, 64]: the run stays bounded")
    from keras_dcgan.serving.session import GeneratorSession

    latent_dim = GeneratorSession(args.onnx).latent_dim
    for number in range(1, args.trials + 1):
        outcomes = trial(args.onnx, args.workers, args.clients, latent_dim)
        print(f"trial {number}: " + ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
