"""A bounded load run against `keras-dcgan serve` (or any TF Serving REST endpoint) on loopback.

    python benchmarks/serve_load.py --onnx exports/dcgan/1/generator.onnx             # starts the server itself
    python benchmarks/serve_load.py --onnx exports/dcgan/1/generator.onnx --baseline  # and a no-model baseline
    python benchmarks/serve_load.py --url http://127.0.0.1:8501 --clients 8 --seconds 10 --batch 1 64

For each batch size: C client threads, each on its own keep-alive connection, send
serving_default predict requests back to back for S seconds (after a 1 s warm-up) and
time each one from sending to the last byte of the answer. Prints predictions/s, requests/s,
p50/p99 latency, the error count and the load average (other jobs on a shared machine set
the tail). Every 50th answer per client is decoded and its batch size checked, so a server
answering garbage quickly counts as errors, not speed.

`--baseline` also loads, interleaved with the server, a stand-in with the same HTTP stack that
parses each request and sends a ready-made answer of the right size (no model, no encoding):
what the machine and the standard library's server allow, to read the figures against.
"""

import argparse
import http.client
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

CHECK_EVERY = 50


def start_process(argv):
    """Start a server that prints "... on URL" as its first line; returns (process, url)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " on http://" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.strip().rsplit(" on ", 1)[1]


def stop_process(process):
    process.send_signal(signal.SIGTERM)
    process.wait(15)


def latent_dim_of(url, model_name):
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=10)
    connection.request("GET", f"/v1/models/{model_name}/metadata")
    metadata = json.loads(connection.getresponse().read())
    connection.close()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    return int(signature["inputs"]["latent"]["tensor_shape"]["dim"][1]["size"])


def client_loop(netloc, path, body, batch, stop_at, measure_from, latencies, errors):
    connection = http.client.HTTPConnection(netloc, timeout=30)
    headers = {"Content-Type": "application/json"}
    count = 0
    while (now := time.perf_counter()) < stop_at:
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            ok = response.status == 200
            if ok and count % CHECK_EVERY == 0:
                ok = np.asarray(json.loads(data)["predictions"]).shape[0] == batch
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(netloc, timeout=30)
            ok = False
        count += 1
        if now >= measure_from:
            if ok:
                latencies.append(time.perf_counter() - now)
            else:
                errors.append(1)
    connection.close()


def run_load(url, model_name, clients, seconds, batch, latent_dim):
    netloc = urllib.parse.urlsplit(url).netloc
    latents = np.random.default_rng(batch).standard_normal((batch, latent_dim)).astype(np.float32)
    body = json.dumps({"instances": latents.tolist()}).encode()
    path = f"/v1/models/{model_name}:predict"
    start = time.perf_counter()
    measure_from, stop_at = start + 1.0, start + 1.0 + seconds
    latencies, errors = [], []  # list.append is atomic under the GIL
    threads = [
        threading.Thread(target=client_loop, args=(netloc, path, body, batch, stop_at, measure_from, latencies, errors))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    milliseconds = np.asarray(latencies) * 1e3
    return {
        "batch": batch,
        "clients": clients,
        "seconds": seconds,
        "requests_per_second": len(latencies) / seconds,
        "predictions_per_second": len(latencies) * batch / seconds,
        "p50_ms": float(np.percentile(milliseconds, 50)) if len(milliseconds) else float("nan"),
        "p99_ms": float(np.percentile(milliseconds, 99)) if len(milliseconds) else float("nan"),
        "errors": len(errors),
        "load_average": round(os.getloadavg()[0], 1),
    }


def serve_fixed_answers(latent_dim):
    """The --baseline stand-in: parse the request, send a cached answer with one image per instance."""
    metadata = json.dumps(
        {"metadata": {"signature_def": {"signature_def": {"serving_default": {"inputs": {"latent": {
            "tensor_shape": {"dim": [{"size": "-1"}, {"size": str(latent_dim)}]}}}}}}}}
    ).encode()
    answers = {}

    class FixedAnswerHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):
            self._send(metadata)

        def do_POST(self):
            count = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["instances"])
            if count not in answers:
                answers[count] = json.dumps({"predictions": np.full((count, 28, 28, 1), 0.5, np.float32).tolist()}).encode()
            self._send(answers[count])

        def _send(self, body):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FixedAnswerHandler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    print(f"fixed answers on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", type=pathlib.Path, help="start `keras-dcgan serve --onnx FILE` on a free port and load it")
    target.add_argument("--url", help="load an already running server, e.g. http://127.0.0.1:8501")
    target.add_argument("--fixed-answer-server", type=int, metavar="LATENT_DIM", help=argparse.SUPPRESS)
    parser.add_argument("--model-name", default="dcgan")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per batch size (default: %(default)s)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="batch sizes (default: %(default)s)")
    parser.add_argument("--baseline", action="store_true", help="also load a no-model stand-in, interleaved")
    parser.add_argument("--json", action="store_true", help="print one JSON line per run instead of a table")
    args = parser.parse_args(argv)
    if args.fixed_answer_server:
        serve_fixed_answers(args.fixed_answer_server)
        return 0

    processes = []
    try:
        url = args.url
        if args.onnx:
            serve = [sys.executable, "-m", "keras_dcgan.cli", "serve", "--onnx", str(args.onnx), "--port", "0",
                     "--max-batch", str(max(args.batch))]
            process, url = start_process(serve)
            processes.append(process)
        latent_dim = latent_dim_of(url, args.model_name)
        targets = [("server", url)]
        if args.baseline:
            process, baseline_url = start_process([sys.executable, __file__, "--fixed-answer-server", str(latent_dim)])
            processes.append(process)
            targets.insert(0, ("baseline", baseline_url))
        if not args.json:
            print(f"{url}  {args.clients} clients x {args.seconds:g} s per batch size, latent_dim {latent_dim}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
            print(f"{'target':>8} {'batch':>5} {'predictions/s':>14} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'load avg':>8}")
        for batch in args.batch:
            for name, target_url in targets:
                result = {"target": name, **run_load(target_url, args.model_name, args.clients, args.seconds, batch, latent_dim)}
                if args.json:
                    print(json.dumps(result), flush=True)
                else:
                    print(
                        f"{name:>8} {batch:>5} {result['predictions_per_second']:>14,.0f} {result['requests_per_second']:>11,.0f} "
                        f"{result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} {result['errors']:>7} {result['load_average']:>8.1f}",
                        flush=True,
                    )
    finally:
        for process in processes:
            stop_process(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
