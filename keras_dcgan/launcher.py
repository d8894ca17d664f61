"""Run one command as N local workers of a MultiWorkerMirroredStrategy cluster on 127.0.0.1.

`keras-dcgan fit --workers N ...` uses it to try a multi-worker job on one machine, and the
tests use it as their harness. Each worker is a separate process with its own TF_CONFIG
naming every worker's address (free ports on 127.0.0.1) and its own index; worker 0 is the
chief. Their output is streamed line by line, prefixed `[worker i]`. When one worker fails
(non-zero exit or killed by a signal) the others are stopped: a collective job cannot go on
without all of its workers, and they would otherwise wait for it forever.

TensorFlow is not imported here: the launcher stays a light parent process.
"""

import dataclasses
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

LOCALHOST = "127.0.0.1"


class WorkerFailed(RuntimeError):
    """A worker exited with an error or was killed; the job was stopped."""

    def __init__(self, worker_index, returncode):
        self.worker_index = worker_index
        self.returncode = returncode
        super().__init__(
            f"worker {worker_index} {describe_exit(returncode)}; stopped the other workers. "
            "Rerun the same command to resume from the last checkpoint in the run directory."
        )

    @property
    def exit_code(self):
        """The worker's own exit code, or 128 + signal number as a shell reports a killed process."""
        return self.returncode if self.returncode > 0 else 128 - self.returncode


@dataclass(frozen=True)
class Worker:
    index: int
    process: subprocess.Popen
    reader: threading.Thread


def describe_exit(returncode):
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def free_ports(count):
    """`count` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    All sockets are held open until every port is chosen, so the ports differ; a port
    can still be taken by another program before the worker binds it (rare on one machine).
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(addresses, index):
    """The TF_CONFIG of worker `index` in a cluster of plain workers (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


def _stream(worker_index, pipe, output, lock):
    prefix = f"[worker {worker_index}] "
    for line in iter(pipe.readline, ""):
        with lock:
            output.write(prefix + line if line.endswith("\n") else prefix + line + "\n")
            output.flush()
    pipe.close()


def launch(command, workers, env=None, output=None, stop_grace_seconds=10.0):
    """Run `command` (an argv list) as `workers` cluster workers; return when all succeeded.

    Raises WorkerFailed naming the first worker that failed, after stopping the others
    (SIGTERM, then SIGKILL after `stop_grace_seconds`). Ctrl-C stops every worker too.
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    output = output or sys.stdout
    lock = threading.Lock()
    addresses = [f"{LOCALHOST}:{port}" for port in free_ports(workers)]
    base_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    running = []
    try:
        for index in range(workers):
            process = subprocess.Popen(
                command,
                env={**base_env, "TF_CONFIG": tf_config(addresses, index)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops the workers
            )
            reader = threading.Thread(target=_stream, args=(index, process.stdout, output, lock), daemon=True)
            reader.start()
            running.append(Worker(index, process, reader))
            with lock:
                output.write(f"[launcher] worker {index}: pid {process.pid}, {addresses[index]}\n")
                output.flush()
        failed = _wait_for_all(running)
    finally:
        _stop(running, stop_grace_seconds)
    if failed is not None:
        raise WorkerFailed(failed.index, failed.process.returncode)


def _wait_for_all(running):
    """The first worker to fail, or None when all exited with 0.

    One waiting thread per worker reports exits in the order they happen: when a worker is
    killed, the others fail a moment later, and the one to name is the first.
    """
    exits = queue.Queue()
    for worker in running:
        threading.Thread(target=lambda worker=worker: exits.put((worker, worker.process.wait())), daemon=True).start()
    for _ in running:
        while True:
            try:
                worker, returncode = exits.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
                break
            except queue.Empty:
                continue
        if returncode != 0:
            return worker
    return None


def _stop(running, grace_seconds):
    for worker in running:
        if worker.process.poll() is None:
            worker.process.terminate()
    deadline = time.monotonic() + grace_seconds
    for worker in running:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.reader.join(timeout=5)


def fit_flags(config, options):
    """`keras-dcgan fit` flags that reproduce `config` and `options` exactly."""
    flags = []
    for name, value in {**dataclasses.asdict(config), **dataclasses.asdict(options)}.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        elif value is not None:
            flags += [f"--{flag}", str(value)]
    return flags


def fit_command(config, options):
    """The argv of a `keras-dcgan fit` worker process that trains `config` as `options` say."""
    return [sys.executable, "-m", "keras_dcgan.cli", "fit", *fit_flags(config, options)]


def launch_fit(config, options, workers):
    """`keras-dcgan fit --workers N`: train `config` with N local workers; returns the exit code."""
    if options.strategy not in ("auto", "multi-worker"):
        raise ValueError(f"--workers runs a multi-worker job: use --strategy auto or multi-worker, not {options.strategy}")
    # Stopped by SIGTERM (a job scheduler, `kill`): stop the workers too, through launch()'s cleanup.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        launch(fit_command(config, options), workers)
    except WorkerFailed as failure:
        print(f"keras-dcgan fit: error: {failure}", file=sys.stderr)
        return failure.exit_code
    return 0
