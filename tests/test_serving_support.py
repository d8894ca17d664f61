"""Shared by the serving tests: processes without TensorFlow, servers on free ports (the export they serve: conftest.py).

No tests here; the serving tests import what they share from here.
"""

import contextlib
import io
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from helpers import REPO_ROOT
START_TIMEOUT_SECONDS = 60

# Run the CLI in a process where importing TensorFlow or Keras fails, as on a device without them.
TF_FREE_CLI = """
import importlib.abc, sys

class BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorflow_serving"):
            raise ImportError(f"importing {name} is blocked: this process must run without TensorFlow")

sys.meta_path.insert(0, BlockTensorFlow())
from keras_dcgan.cli import main
code = main(sys.argv[1:])
assert not any(name.partition(".")[0] in ("tensorflow", "keras") for name in sys.modules), "TensorFlow was imported"
sys.exit(code)
"""


# Prepended to TF_FREE_CLI: ai-edge-litert missing as well, as on a device with the base install only.
BLOCK_LITERT = """
import importlib.abc, sys

class BlockLiteRT(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "ai_edge_litert":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, BlockLiteRT())
"""


def decode_png(data):
    return np.asarray(Image.open(io.BytesIO(data)))


def tf_free_cli(*args, block_litert=False):
    """argv running `keras-dcgan ARGS` with tensorflow and keras imports blocked (and ai-edge-litert's, with `block_litert`)."""
    return [sys.executable, "-c", (BLOCK_LITERT if block_litert else "") + TF_FREE_CLI, *map(str, args)]


def run_tf_free_cli(*args, timeout=120, block_litert=False):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = tf_free_cli(*args, block_litert=block_litert)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=environment)


def run_litert_free_cli(*args, timeout=120):
    """`keras-dcgan ARGS` in a process where TensorFlow, Keras and ai-edge-litert cannot be imported."""
    return run_tf_free_cli(*args, timeout=timeout, block_litert=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """A server subprocess; `url` once `find_url(self)` returns one (it is polled, and may read `self.output`)."""

    def __init__(self, argv, find_url):
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        self.output = []  # every line of both streams, read on threads so that the pipes never fill
        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=self._collect, args=(stream,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (url := find_url(self)) is None:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {''.join(self.output)[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server did not start within {START_TIMEOUT_SECONDS} s: {''.join(self.output)[-2000:]}")
            time.sleep(0.1)
        self.url = url

    def _collect(self, stream):
        for line in stream:
            self.output.append(line)

    def stop(self, timeout=15):
        """SIGTERM, then wait; returns the exit code (kills it if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def announced_url(server):
    """The URL in keras-dcgan serve's first line, "serving NAME version N from FILE on URL" (or "versions ... from FOLDER")."""
    for line in list(server.output):
        if line.startswith("serving "):
            return line.strip().rsplit(" on ", 1)[1]
    return None


def start_keras_dcgan_serve(model_path, *extra_args):
    """`keras-dcgan serve --onnx` (or `--tflite`, by the file's suffix) on a free port of 127.0.0.1, in a process without TensorFlow."""
    flag = "--tflite" if pathlib.Path(model_path).suffix == ".tflite" else "--onnx"
    return ServerProcess(tf_free_cli("serve", flag, model_path, "--port", "0", *extra_args), announced_url)


def start_keras_dcgan_serve_models(base_path, *extra_args):
    """`keras-dcgan serve --model-base-path` on a free port of 127.0.0.1, in a process without TensorFlow."""
    return ServerProcess(tf_free_cli("serve", "--model-base-path", base_path, "--port", "0", *extra_args), announced_url)


def tensorflow_model_server_or_skip():
    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip(
            "tensorflow_model_server is not on PATH (it cannot be installed here; docs/serving.md, "
            "shows how to run these tests with the tensorflow/serving Docker image)"
        )
    return binary


def start_tensorflow_model_server(export_root, model_name="dcgan"):
    """The real TF Serving binary on free ports, serving <export_root>/<model_name>; ready once the model is AVAILABLE."""
    binary = tensorflow_model_server_or_skip()
    rest_port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{rest_port}"

    def model_available(server):
        try:
            with urllib.request.urlopen(f"{url}/v1/models/{model_name}", timeout=2) as response:
                return url if b"AVAILABLE" in response.read() else None
        except OSError:  # not listening yet, or the model is still loading (404)
            return None

    server = ServerProcess(
        [binary, f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_name={model_name}",
         f"--model_base_path={pathlib.Path(export_root).resolve() / model_name}"],
        model_available,
    )
    server.grpc_target = f"127.0.0.1:{grpc_port}"
    return server


def worker_pids(server):
    """The server's worker processes: its children spawned by multiprocessing (not its resource tracker)."""
    pids = []
    for task in os.listdir(f"/proc/{server.process.pid}/task"):
        with open(f"/proc/{server.process.pid}/task/{task}/children") as children:
            pids += [int(pid) for pid in children.read().split()]
    workers = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # it exited since it was listed
            if b"spawn_main" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
    return sorted(workers)


def process_holding(connection, candidates):
    """Which of `candidates` holds the server end of this client connection (from /proc/net/tcp and their fds)."""
    client_port, server_port = connection.getsockname()[1], connection.getpeername()[1]
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            fields = row.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if (local, remote) == (server_port, client_port):
                inode = fields[9]
                break
        else:
            raise AssertionError("the connection is not in /proc/net/tcp")
    for pid in candidates:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
    raise AssertionError(f"no process of {candidates} holds the connection")
