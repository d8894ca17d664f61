"""Which HTTP server `keras-dcgan serve` runs on: the same PredictionApi behind each candidate, loaded alike.

    python benchmarks/http_server_choice.py --onnx exports/dcgan/1/generator.onnx --seconds 5

Candidates: uvicorn with a bare ASGI app (serving/server.py itself), uvicorn with Starlette
(both on uvloop, as uvicorn picks it when installed), hypercorn, aiohttp (both on asyncio's
own loop, their default), waitress, and the standard library's threading HTTP server the project
used before. Each runs in its own process with model calls on the same number of threads;
8 clients on keep-alive connections (benchmarks/serve_load.py's client) send batch-1 and
batch-64 predict requests. Prints predictions/s, p99, the server's resident memory after the
load, and the install size of the candidate's packages and their dependencies (what a device
adds to numpy, onnxruntime and Pillow); then the install size of the whole serving runtime.
"""

import argparse
import asyncio
import importlib.metadata
import os
import pathlib
import signal
import socket
import sys

from packaging.requirements import Requirement

from serve_load import latent_dim_of, load_server, start_server, stop_server  # a sibling script: Python puts a script's own folder first on sys.path

MODEL_THREADS = os.cpu_count()
# What `keras-dcgan serve` needs on a device, by role (pyproject.toml's base dependencies for serving).
SERVING_RUNTIME = {
    "model (onnxruntime, numpy)": ["onnxruntime", "numpy"],
    "PNG (Pillow)": ["pillow"],
    "JSON (orjson)": ["orjson"],
    "HTTP (uvicorn, httptools, uvloop)": ["uvicorn", "httptools", "uvloop"],
    "metrics (prometheus-client)": ["prometheus-client"],
}
CANDIDATES = {  # name -> the distributions it installs
    "uvicorn + bare ASGI (chosen)": ["uvicorn", "httptools", "uvloop"],
    "uvicorn + starlette": ["uvicorn", "httptools", "uvloop", "starlette"],
    "hypercorn": ["hypercorn"],
    "aiohttp": ["aiohttp"],
    "waitress": ["waitress"],
    "http.server (before)": [],
}


def installed_bytes(names):
    """Bytes on disk of these distributions and everything they require (extras not counted)."""
    seen, pending, total = set(), list(names), 0
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        distribution = importlib.metadata.distribution(name)
        total += sum((file.size or 0) for file in distribution.files or [])
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return total


def resident_megabytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build_api(onnx_path):
    from keras_dcgan.serving.rest_api import PredictionApi
    from keras_dcgan.serving.session import GeneratorSession

    return PredictionApi.of_session(GeneratorSession(onnx_path, threads=1), "dcgan", 1, 256)


def serve_candidate(name, onnx_path):
    """Run candidate `name` on a free port of 127.0.0.1 until SIGTERM; prints "... on URL" first."""
    from keras_dcgan.serving import json_codec
    from keras_dcgan.serving.server import BatchingOptions, ServerLimits

    api = build_api(onnx_path)
    limits = ServerLimits(4 << 20, 10.0, 30.0, 10.0)
    unbatched = BatchingOptions(enabled=False, max_rows=1)  # one request per model call, as in every other candidate
    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def answer(method, path, body):
        status, payload = api.respond(method, path, body)
        return status, json_codec.encode(payload)

    if name.startswith("uvicorn + bare"):
        from keras_dcgan.serving.server import RestApp, serve

        app = RestApp(api, limits, unbatched, threads=MODEL_THREADS)
        serve(app, sock, on_ready=lambda url: print(f"{name} on {url}", flush=True))
        return
    print(f"{name} on {url}", flush=True)
    if name == "uvicorn + starlette":
        import uvicorn
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response
        from starlette.routing import Route

        async def endpoint(request):
            status, body = await run_in_threadpool(answer, request.method, request.url.path, await request.body())
            return Response(body, status, media_type="application/json")

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
        app = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
        uvicorn.Server(uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning", access_log=False)).run(sockets=[sock])
    elif name == "hypercorn":
        import hypercorn.asyncio
        import hypercorn.config

        from keras_dcgan.serving.server import RestApp

        config = hypercorn.config.Config()
        config.loglevel = "WARNING"
        config.bind = [f"fd://{sock.fileno()}"]
        stop = asyncio.Event()

        async def main():
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await hypercorn.asyncio.serve(RestApp(api, limits, unbatched, threads=MODEL_THREADS), config, shutdown_trigger=stop.wait)

        asyncio.run(main())
    elif name == "aiohttp":
        import concurrent.futures

        from aiohttp import web

        executor = concurrent.futures.ThreadPoolExecutor(MODEL_THREADS)

        async def handler(request):
            body = await request.read()
            status, payload = await asyncio.get_running_loop().run_in_executor(executor, answer, request.method, request.raw_path, body)
            return web.Response(body=payload, status=status, content_type="application/json")

        app = web.Application(client_max_size=4 << 20)
        app.router.add_route("*", "/{tail:.*}", handler)
        web.run_app(app, sock=sock, print=None, access_log=None)
    elif name == "waitress":
        import logging

        import waitress

        logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth is N" at every backlog

        def wsgi(environ, start_response):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            status, payload = answer(environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["wsgi.input"].read(length))
            start_response(f"{status} -", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
            return [payload]

        signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
        waitress.serve(wsgi, sockets=[sock], threads=MODEL_THREADS, _quiet=True)
    elif name == "http.server (before)":
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self):
                self._answer()

            def do_POST(self):
                self._answer()

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, payload = answer(self.command, self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):
                pass

        server = ThreadingHTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock  # already listening: the URL printed above works from the start
        server.daemon_threads = True
        signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
        server.serve_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=pathlib.Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per candidate and batch size (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--candidate", choices=CANDIDATES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.candidate:
        serve_candidate(args.candidate, args.onnx)
        return 0
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be in (0, 60]: the run stays bounded")
    latent_dim = latent_dim_of(args.onnx)
    print(f"{args.clients} clients x {args.seconds:g} s per candidate and batch size, {MODEL_THREADS} model threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    print(f"{'candidate':>28} {'b1 pred/s':>10} {'b1 p99 ms':>10} {'b1 CPU ms/pred':>14} {'b64 pred/s':>11} {'b64 p99 ms':>11} "
          f"{'RSS MB':>7} {'install MB':>10}")
    for name, distributions in CANDIDATES.items():
        process, url = start_server([sys.executable, __file__, "--onnx", str(args.onnx), "--candidate", name])
        try:
            one, sixty_four = (load_server(name, url, process.pid, "dcgan", args.clients, args.seconds, batch, latent_dim) for batch in (1, 64))
            resident = resident_megabytes(process.pid)
        finally:
            stop_server(process)
        print(
            f"{name:>28} {one['predictions_per_second']:>10,.0f} {one['p99_ms']:>10.1f} {one['cpu_ms_per_prediction']:>14.3f} "
            f"{sixty_four['predictions_per_second']:>11,.0f} "
            f"{sixty_four['p99_ms']:>11.1f} {resident:>7.0f} {installed_bytes(distributions) / 1e6:>10.1f}"
            + (f"  errors {one['errors'] + sixty_four['errors']}" if one["errors"] + sixty_four["errors"] else ""),
            flush=True,
        )
    print("serving runtime on a device, with everything each part requires:")
    for role, distributions in SERVING_RUNTIME.items():
        print(f"  {role:<30} {installed_bytes(distributions) / 1e6:>7.1f} MB")
    print(f"  {'all of it':<30} {installed_bytes(sum(SERVING_RUNTIME.values(), [])) / 1e6:>7.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
