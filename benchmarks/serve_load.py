"""Bounded load on loopback: `keras-dcgan serve` against an older commit's server and onnxruntime alone.

    python benchmarks/serve_load.py --onnx exports/dcgan/1/generator.onnx --old-commit 6bb0bd3
    python benchmarks/serve_load.py --onnx exports/dcgan/1/generator.onnx --clients 8 --seconds 10 --batch 1 64
    python benchmarks/serve_load.py --onnx exports/dcgan/1/generator.onnx --rollout --seconds 10 --rounds 3

For each batch size, interleaved in one run:
- ceiling: onnxruntime alone, one single-threaded session call per core at a time, back to
  back: cores x batch / the median call time (what the model allows on these cores with no
  HTTP, JSON or Python server at all);
- old: `keras-dcgan serve` of `--old-commit`, run from `git archive` of that commit in a
  temporary folder with this same Python environment;
- new: `keras-dcgan serve` of this checkout, with its defaults (a worker process per core,
  batching on), then in one process (`--workers 1`), with and without batching (one request
  per model call), to show what each does; with `--no-ui-too`, each of those also with
  `--no-ui`, right after it, to show that the page at / costs the API nothing.
`--rounds R` measures every target R times in turn, so that a change in the machine's load
falls on all of them alike.
C client threads, each on its own keep-alive connection, send serving_default predict
requests back to back for S seconds (after a 1 s warm-up), each request timed from sending
to the last byte of its answer. The client writes prebuilt request bytes on a raw socket and
reads the answer by its Content-Length, so that it takes as little of the shared cores as it
can. Every 50th answer per client is decoded and its batch size checked: a server answering
garbage quickly counts as errors, not speed. Prints predictions/s, p50/p99 and errors.

On a machine shared with other jobs, predictions/s measure the share of the cores a target got
as much as the target. So each target's CPU time during the measured seconds is read too (the
server's processes', all threads; the ceiling's model calls' own): CPU ms per prediction, and the
capacity it implies, cores / CPU time per prediction, the predictions/s it would reach with
every core to itself. "pred/s %" compares predictions/s with the ceiling's in the same run,
"capacity %" compares capacities. The clients' own CPU time per request (this process's, while
it loads a server) is printed too: it is what the clients take from the server's cores.

`--rollout` measures `serve --model-base-path` instead, on a base path made in a temporary
folder from the --onnx file's export folder (version 1; version 2 is a copy of it with its
manifest's version rewritten, renamed into place whole as `keras-dcgan export` writes it):
- batch 1, --rounds times, interleaved: the default `serve --onnx` server, then the base-path
  server (with its defaults, a worker per core): what routing through the version repository costs;
- the rollout: the clients load the base-path server (half of them at /labels/stable, half at the
  latest version) while version 2 is written, becomes available in the workers, the config moves
  `stable` to it and retires version 1 (SIGHUP), then 3 s more. Prints failed requests (the goal
  is 0), the predictions/s before the new version was written, over the rollout, and in its
  slowest 0.5 s window, and when each step was seen.
"""

import argparse
import contextlib
import itertools
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import numpy as np

CHECK_EVERY = 50
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# Imports keras_dcgan (and its serving/export folders) from the folder given first, not from this checkout.
RUN_FROM_FOLDER = (
    "import sys; folder = sys.argv.pop(1); sys.path.insert(0, folder); import keras_dcgan; "
    "keras_dcgan.__path__.append(folder); from keras_dcgan.cli import main; sys.exit(main(sys.argv[1:]))"
)


def start_server(argv):
    """Start a server that prints "... on URL" as its first line; returns (process, url)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " on http://" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.strip().rsplit(" on ", 1)[1]


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def read_answer(stream):
    """(status, body) of one HTTP/1.1 answer framed by Content-Length."""
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(status_line.split()[1]), stream.read(length)


def client_loop(netloc, request, batch, stop_at, measure_from, latencies, errors, answered_at=None, stop=None):
    host, port = netloc.rsplit(":", 1)
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = connection.makefile("rb")
    count = 0
    while (now := time.perf_counter()) < stop_at and not (stop is not None and stop.is_set()):
        try:
            connection.sendall(request)
            status, body = read_answer(stream)
            ok = status == 200
            if ok and count % CHECK_EVERY == 0:
                ok = np.asarray(json.loads(body)["predictions"]).shape[0] == batch
        except (OSError, ValueError):
            connection.close()
            connection = socket.create_connection((host, int(port)), timeout=30)
            stream = connection.makefile("rb")
            ok = False
        count += 1
        if now >= measure_from:
            (latencies if ok else errors).append(time.perf_counter() - now)  # list.append is atomic under the GIL
            if answered_at is not None and ok:
                answered_at.append(time.perf_counter())
    connection.close()


def process_cpu_seconds(pid):
    """User + system CPU time of process `pid` and its running descendants (worker processes), all threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{task}/children") as listed:  # a thread may end meanwhile
            children += [int(child) for child in listed.read().split()]
    return own + sum(process_cpu_seconds(child) for child in children)


def summary(name, batch, seconds, latencies, errors, cpu_seconds, client_cpu_seconds=float("nan")):
    milliseconds = np.asarray(latencies) * 1e3
    predictions = len(latencies) * batch
    cpu_per_prediction = cpu_seconds / predictions if predictions else float("nan")
    return {
        "target": name,
        "batch": batch,
        "predictions_per_second": len(latencies) * batch / seconds,
        "p50_ms": float(np.percentile(milliseconds, 50)) if len(milliseconds) else float("nan"),
        "p99_ms": float(np.percentile(milliseconds, 99)) if len(milliseconds) else float("nan"),
        "errors": len(errors),
        "cpu_ms_per_prediction": cpu_per_prediction * 1e3,
        "client_cpu_ms_per_request": client_cpu_seconds / len(latencies) * 1e3 if latencies else float("nan"),
        "capacity": os.cpu_count() / cpu_per_prediction,  # predictions/s if it had every core to itself
        "load_average": round(os.getloadavg()[0], 1),
    }


def predict_request(netloc, path, batch, latent_dim):
    latents = np.random.default_rng(batch).standard_normal((batch, latent_dim)).astype(np.float32)
    body = json.dumps({"instances": latents.tolist()}).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def load_server(name, url, pid, model_name, clients, seconds, batch, latent_dim):
    netloc = urllib.parse.urlsplit(url).netloc
    request = predict_request(netloc, f"/v1/models/{model_name}:predict", batch, latent_dim)
    start = time.perf_counter()
    measure_from, stop_at = start + 1.0, start + 1.0 + seconds
    latencies, errors = [], []
    threads = [
        threading.Thread(target=client_loop, args=(netloc, request, batch, stop_at, measure_from, latencies, errors))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu_at_start, client_cpu_at_start = process_cpu_seconds(pid), time.process_time()
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    cpu_seconds, client_cpu_seconds = process_cpu_seconds(pid) - cpu_at_start, time.process_time() - client_cpu_at_start
    for thread in threads:
        thread.join()
    return summary(name, batch, seconds, latencies, errors, cpu_seconds, client_cpu_seconds)


def load_onnxruntime(onnx_path, seconds, batch, cores):
    """The ceiling: `cores` threads, each running a single-threaded session back to back."""
    from keras_dcgan.serving.session import GeneratorSession

    session = GeneratorSession(onnx_path, threads=1)
    latents = np.random.default_rng(batch).standard_normal((batch, session.latent_dim)).astype(np.float32)
    start = time.perf_counter()
    measure_from, stop_at = start + 1.0, start + 1.0 + seconds
    latencies, cpu_times = [], []

    def loop():
        while (now := time.perf_counter()) < stop_at:
            cpu_before = time.thread_time()
            session.generate(latents)
            if now >= measure_from:
                latencies.append(time.perf_counter() - now)
                cpu_times.append(time.thread_time() - cpu_before)

    threads = [threading.Thread(target=loop) for _ in range(cores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(f"ceiling ({cores} x onnxruntime, 1 thread)", batch, seconds, latencies, [], sum(cpu_times))


def latent_dim_of(onnx_path):
    from keras_dcgan.serving.session import GeneratorSession

    return GeneratorSession(onnx_path).latent_dim


def old_checkout(commit, folder):
    """`git archive` of `commit` unpacked into `folder`; returns the folder."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def add_version(base_path, export_dir, version):
    """`export_dir` copied to base_path/version with its manifest's version rewritten, renamed into place in one step."""
    from keras_dcgan.contract import MANIFEST_NAME

    staging = base_path / f".partial-{version}"
    shutil.copytree(export_dir, staging)
    manifest = json.loads((staging / MANIFEST_NAME).read_text())
    (staging / MANIFEST_NAME).write_text(json.dumps({**manifest, "version": version}))
    os.rename(staging, base_path / str(version))


def write_models_config(path, policy, stable):
    text = f'model_config_list {{ config {{ name: "dcgan" model_version_policy {{ {policy} }} version_labels {{ key: "stable" value: {stable} }} }} }}\n'
    path.with_suffix(".tmp").write_text(text)
    os.rename(path.with_suffix(".tmp"), path)


def version_states(url, model_name, asks=10):
    """{version: state} as each of `asks` fresh connections (any worker) reports it, or None where they disagree."""
    seen = []
    for _ in range(asks):
        with urllib.request.urlopen(f"{url}/v1/models/{model_name}", timeout=10) as answer:
            seen.append({int(entry["version"]): entry["state"] for entry in json.load(answer)["model_version_status"]})
    return seen[0] if all(states == seen[0] for states in seen) else None


def wait_until(check, timeout=60):
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise SystemExit(f"the rollout did not finish within {timeout} s")
        time.sleep(0.05)
    return time.perf_counter()


def rollout(url, process, base_path, config, export_dir, clients, latent_dim):
    """Load the base-path server while version 2 is written and version 1 retires; the figures of the module docstring."""
    netloc = urllib.parse.urlsplit(url).netloc
    paths = ["/v1/models/dcgan/labels/stable:predict", "/v1/models/dcgan:predict"]
    latencies, errors, answered_at = [], [], []
    start, stop = time.perf_counter(), threading.Event()
    threads = [
        threading.Thread(
            target=client_loop,
            args=(netloc, predict_request(netloc, paths[index % 2], 1, latent_dim), 1, start + 300, start + 1.0, latencies, errors),
            kwargs={"answered_at": answered_at, "stop": stop},
        )
        for index in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(4.0)
    written = time.perf_counter()
    add_version(base_path, export_dir, 2)
    loaded = wait_until(lambda: (version_states(url, "dcgan") or {}).get(2) == "AVAILABLE")
    write_models_config(config, "specific { versions: 2 }", 2)
    process.send_signal(signal.SIGHUP)
    retired = wait_until(lambda: version_states(url, "dcgan") == {2: "AVAILABLE", 1: "END"})
    time.sleep(3.0)
    stop.set()
    for thread in threads:
        thread.join()
    times = np.asarray(answered_at)
    before = ((times >= start + 1.0) & (times < written)).sum() / (written - start - 1.0)
    during = ((times >= written) & (times < retired)).sum() / (retired - written)
    windows = np.arange(written, retired, 0.5)
    slowest = min(((times >= at) & (times < at + 0.5)).sum() / 0.5 for at in windows) if len(windows) else float("nan")
    print(f"rollout: {len(errors)} failed of {len(latencies) + len(errors)} requests; pred/s {before:,.0f} before, {during:,.0f} "
          f"during ({during / before:.0%}), slowest 0.5 s {slowest:,.0f} ({slowest / before:.0%}); version 2 available in "
          f"{loaded - written:.2f} s, version 1 retired {retired - loaded:.2f} s later; load average {os.getloadavg()[0]:.1f}", flush=True)


def rollout_run(args, latent_dim):
    """The interleaved batch-1 rates of `serve --onnx` and `serve --model-base-path`, then the rollout."""
    common = ["--port", "0", "--max-batch", "1"]
    with tempfile.TemporaryDirectory() as temporary:
        base_path = pathlib.Path(temporary) / "dcgan"
        base_path.mkdir()
        add_version(base_path, args.onnx.parent, 1)
        config = pathlib.Path(temporary) / "models.config"
        write_models_config(config, "latest { num_versions: 2 }", 1)
        servers = []
        try:
            for name, flags in (
                ("serve --onnx", ["--onnx", str(args.onnx)]),
                ("serve --model-base-path", ["--model-base-path", str(base_path), "--model-config-file", str(config)]),
            ):
                process, url = start_server([sys.executable, "-m", "keras_dcgan.cli", "serve", *flags, *common])
                servers.append((name, url, process))
            print(f"{args.clients} clients x {args.seconds:g} s per target, batch 1, {args.rounds} rounds, latent_dim {latent_dim}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
            rates = {name: [] for name, _, _ in servers}
            cpu = {name: [] for name, _, _ in servers}
            for round_number in range(1, args.rounds + 1):
                for name, url, process in servers:
                    result = load_server(name, url, process.pid, "dcgan", args.clients, args.seconds, 1, latent_dim)
                    rates[name].append(result["predictions_per_second"])
                    cpu[name].append(result["cpu_ms_per_prediction"])
                    print(f"round {round_number} {name:>24}: {result['predictions_per_second']:>7,.0f} pred/s, p99 {result['p99_ms']:.2f} ms, "
                          f"{result['errors']} errors, CPU {result['cpu_ms_per_prediction']:.3f} ms/pred, load average {result['load_average']}", flush=True)
            onnx, base = "serve --onnx", "serve --model-base-path"
            print(f"median pred/s: --onnx {np.median(rates[onnx]):,.0f}, --model-base-path {np.median(rates[base]):,.0f} "
                  f"({np.median(rates[base]) / np.median(rates[onnx]):.0%}); median CPU ms/pred: --onnx {np.median(cpu[onnx]):.3f}, "
                  f"--model-base-path {np.median(cpu[base]):.3f}", flush=True)
            _, url, process = servers[1]
            rollout(url, process, base_path, config, args.onnx.parent, args.clients, latent_dim)
        finally:
            for _, _, process in servers:
                stop_server(process)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=pathlib.Path, required=True, help="the exported generator.onnx (with its manifest.json)")
    parser.add_argument("--old-commit", help="also start `keras-dcgan serve` of this commit, e.g. 6bb0bd3")
    parser.add_argument("--model-name", default="dcgan")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per target and batch size (default: %(default)s)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="batch sizes (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores for the onnxruntime ceiling (default: all, %(default)s)")
    parser.add_argument("--rollout", action="store_true", help="measure serve --model-base-path and a version rollout instead (above)")
    parser.add_argument("--no-ui-too", action="store_true", help="also run each new target with --no-ui (no page at /)")
    parser.add_argument("--rounds", type=int, default=1, help="times every target is measured, in turn; --rollout's batch-1 comparison too (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 120 or not 1 <= args.clients <= 256 or not 1 <= args.rounds <= 10:
        parser.error("--seconds must be in (0, 120], --clients in [1, 256] and --rounds in [1, 10]: the run stays bounded")

    latent_dim = latent_dim_of(args.onnx)
    if args.rollout:
        rollout_run(args, latent_dim)
        return 0
    serve = ["serve", "--onnx", str(args.onnx), "--port", "0", "--max-batch", str(max(args.batch))]
    processes, targets = [], []
    with tempfile.TemporaryDirectory() as temporary:
        try:
            if args.old_commit:
                folder = old_checkout(args.old_commit, pathlib.Path(temporary))
                process, url = start_server([sys.executable, "-c", RUN_FROM_FOLDER, str(folder), *serve])
                processes.append(process)
                targets.append((f"old ({args.old_commit})", url, process.pid))
            variants = [("", [])] + ([(" --no-ui", ["--no-ui"])] if args.no_ui_too else [])
            for (name, flags), (suffix, variant_flags) in itertools.product((
                (f"new (--workers {os.cpu_count()})", []),
                ("new, --workers 1", ["--workers", "1"]),
                ("new, --workers 1 --no-batching", ["--workers", "1", "--no-batching"]),
            ), variants):
                name, flags = name + suffix, flags + variant_flags
                process, url = start_server([sys.executable, "-m", "keras_dcgan.cli", *serve, *flags])
                processes.append(process)
                targets.append((name, url, process.pid))
            print(f"{args.clients} clients x {args.seconds:g} s per target and batch size, latent_dim {latent_dim}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
            print(f"{'target':>40} {'batch':>5} {'pred/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'CPU ms/pred':>11} "
                  f"{'capacity':>8} {'pred/s %':>8} {'capacity %':>10} {'client CPU ms/req':>17} {'load avg':>8}")
            for _, batch in itertools.product(range(args.rounds), args.batch):
                ceiling = load_onnxruntime(args.onnx, args.seconds, batch, args.cores)
                results = [ceiling] + [
                    load_server(name, target_url, pid, args.model_name, args.clients, args.seconds, batch, latent_dim)
                    for name, target_url, pid in targets
                ]
                for result in results:
                    speed_share = 100 * result["predictions_per_second"] / ceiling["predictions_per_second"]
                    capacity_share = 100 * result["capacity"] / ceiling["capacity"]
                    print(
                        f"{result['target']:>40} {batch:>5} {result['predictions_per_second']:>7,.0f} {result['p50_ms']:>8.2f} "
                        f"{result['p99_ms']:>8.2f} {result['errors']:>6} {result['cpu_ms_per_prediction']:>11.3f} "
                        f"{result['capacity']:>8,.0f} {speed_share:>7.0f}% {capacity_share:>9.0f}% "
                        f"{result['client_cpu_ms_per_request']:>17.3f} {result['load_average']:>8.1f}",
                        flush=True,
                    )
        finally:
            for process in processes:
                stop_server(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
