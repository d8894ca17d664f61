"""Resident memory of `keras-dcgan serve` per process, idle and under load: what a pod's memory request needs.

    python benchmarks/serve_memory.py --onnx exports/dcgan/1/generator.onnx --workers 2 --max-batch 256 --seconds 20

Starts the server on 127.0.0.1, reads VmRSS of the supervising process and of each worker
(/proc/PID/status) once every worker is ready and has answered a first request, then drives
it with `--clients` keep-alive clients for `--seconds` (v1 predicts and v2 infers, batches of 1
and of `--max-batch`, the server's largest), and reads VmRSS and VmHWM (the peak) again. Linux only.
onnxruntime keeps the memory of its largest call for the next ones, so the largest batch, not
the request rate, sets a worker's loaded size.
"""

import argparse
import http.client
import json
import pathlib
import re
import subprocess
import sys
import threading
import time

import numpy as np

def memory_kib(pid, field):
    text = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def worker_pids(pid):
    children = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return [child for child in children if b"spawn_main" in pathlib.Path(f"/proc/{child}/cmdline").read_bytes()] or []


def requests(latent_dim, max_batch):
    """(method, path, body, headers) of the load's requests, cycled by every client."""
    bodies = []
    for batch in (1, max_batch):
        latents = np.random.default_rng(batch).standard_normal((batch, latent_dim)).astype(np.float32)
        bodies.append(("/v1/models/dcgan:predict", json.dumps({"instances": latents.tolist()}).encode(), {}))
        header = json.dumps({
            "inputs": [{"name": "latent", "shape": [batch, latent_dim], "datatype": "FP32", "parameters": {"binary_data_size": latents.nbytes}}],
            "outputs": [{"name": "images", "parameters": {"binary_data": True}}],
        }).encode()
        bodies.append(("/v2/models/dcgan/infer", header + latents.tobytes(), {"Inference-Header-Content-Length": str(len(header))}))
    return bodies


def load(host, port, work, stop_at, answered):
    connection = http.client.HTTPConnection(host, port, timeout=60)
    count = 0
    while time.monotonic() < stop_at:
        for path, body, headers in work:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, (path, response.status)
            count += 1
    answered.append(count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=256, help="the server's --max-batch, the largest batch sent")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "keras_dcgan.cli", "serve", "--onnx", args.onnx, "--port", "0", "--workers", str(args.workers),
         "--max-batch", str(args.max_batch)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = server.stdout.readline().strip().rsplit(" on ", 1)[1]  # "serving ... on http://127.0.0.1:PORT"
        host, port = url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/v2/models/dcgan")
        latent_dim = json.loads(connection.getresponse().read())["inputs"][0]["shape"][1]
        work = requests(latent_dim, args.max_batch)
        for path, body, headers in work:  # a first answer from each kind, so that idle means "has served"
            connection.request("POST", path, body, headers)
            connection.getresponse().read()
        workers = worker_pids(server.pid) if args.workers > 1 else []
        processes = {"supervisor" if workers else "server": server.pid, **{f"worker {index + 1}": pid for index, pid in enumerate(workers)}}
        idle = {name: memory_kib(pid, "VmRSS") for name, pid in processes.items()}

        answered, stop_at = [], time.monotonic() + args.seconds
        clients = [threading.Thread(target=load, args=(host, int(port), work, stop_at, answered)) for _ in range(args.clients)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        loaded = {name: (memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM")) for name, pid in processes.items()}
    finally:
        server.terminate()
        server.wait(30)

    print(f"{args.workers} worker(s), batches of 1 and {args.max_batch}, {args.clients} clients for {args.seconds:g} s: {sum(answered)} requests answered")
    print(f"{'process':<12} {'idle RSS MiB':>13} {'loaded RSS MiB':>15} {'peak (HWM) MiB':>15}")
    for name in processes:
        print(f"{name:<12} {idle[name] / 1024:>13.1f} {loaded[name][0] / 1024:>15.1f} {loaded[name][1] / 1024:>15.1f}")
    print(f"{'all':<12} {sum(idle.values()) / 1024:>13.1f} {sum(rss for rss, _ in loaded.values()) / 1024:>15.1f} "
          f"{sum(peak for _, peak in loaded.values()) / 1024:>15.1f}")


if __name__ == "__main__":
    main()
