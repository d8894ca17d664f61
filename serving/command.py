"""The `generate` and `serve` subcommands. Imports no TensorFlow: both run on a device with onnxruntime only
(`generate --tflite` and `serve --tflite` with ai-edge-litert, the extra `keras-dcgan[litert]`).

`generate --grpc` is the exception: it needs the optional extra `keras-dcgan[grpc]`
(tensorflow-serving-api, which pulls in TensorFlow), imported only when asked for.
"""

import argparse
import contextlib
import os
import pathlib
import resource
import signal
import socket
import sys

import numpy as np

from keras_dcgan.contract import LITERT_FILE, MANIFEST_NAME, MODEL_FILE_ENTRIES, ONNX_FILE
from keras_dcgan.flag_types import INT64_MAX, integer_flag
from keras_dcgan.latents import MAX_SEED, latents_from_seeds
from keras_dcgan.output_paths import check_output_files, make_parent_folder

DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_BODY_BYTES = 4 << 20  # a batch of 256 latents of size 100 is ~0.5 MB of JSON
DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0
DEFAULT_IDLE_TIMEOUT_SECONDS = 30.0
DEFAULT_DRAIN_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_BATCH_ROWS = 64  # rows per shared model call: merging requests that fill a call already gained nothing (docs/rest-server.md)
REQUEST_BATCH = 64  # latents per model call or request of `generate`: bounded memory, under any --max-batch
MAX_GENERATE = 10_000  # digits per `generate`: its grid is then 100 x 100 digits (3,002 pixels square)


positive_integer = integer_flag(1)
digit_count = integer_flag(1, MAX_GENERATE, " digits per run (one grid holds them all)")


def positive_seconds(text):
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text}")
    return value


def non_negative_seconds(text):
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, got {text}")
    return value


def port_number(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535] (0 picks a free port), got {value}")
    return value


def add_generate_command(commands):
    generate = commands.add_parser(
        "generate",
        help="draw digits from an exported generator: ONNX or LiteRT file, TF Serving (REST or gRPC) or keras-dcgan serve",
        description="Draw --n digits for the seeds --seed, --seed+1, ... from one back end. Seed N gives the same "
        "digit on every back end. --out FILE.png writes one grid; --out FOLDER writes FOLDER/grid.png and "
        "one FOLDER/seed_N.png per digit.",
    )
    backend = generate.add_mutually_exclusive_group(required=True)
    backend.add_argument("--onnx", metavar="FILE", help="run this ONNX file with onnxruntime (checks manifest.json beside it)")
    backend.add_argument(
        "--tflite", metavar="FILE", help="run this LiteRT file with ai-edge-litert (checks manifest.json beside it; needs keras-dcgan[litert])"
    )
    backend.add_argument("--server", metavar="URL", help="TF Serving REST endpoint, e.g. http://127.0.0.1:8501")
    backend.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving gRPC endpoint, e.g. 127.0.0.1:8500 (needs keras-dcgan[grpc])")
    generate.add_argument("--model-name", default="dcgan", help="served model name (default: %(default)s)")
    generate.add_argument("--version", type=positive_integer, default=None, help="served model version (default: the latest)")
    generate.add_argument("--n", type=digit_count, default=16, help=f"number of digits, at most {MAX_GENERATE:,} (default: %(default)s)")
    generate.add_argument("--seed", type=int, default=0, help="first seed; digit i uses seed+i (default: %(default)s)")
    generate.add_argument(
        "--digit", default=None,
        help="draw this digit every time (0-9 for MNIST; an export whose manifest records 'digits', see docs/digits.md)",
    )
    generate.add_argument("--out", default="digits.png", help="FILE.png for a grid, or a FOLDER for grid + one PNG each (default: %(default)s)")
    generate.add_argument("--force", action="store_true", help="overwrite PNG files that exist (without it, an existing one is an error)")
    generate.add_argument("--no-verify", action="store_true", help="run an --onnx or --tflite file that has no manifest.json beside it, unchecked")
    generate.set_defaults(handler=run_generate)


def run_generate(args):
    if not 0 <= args.seed <= MAX_SEED - args.n + 1:
        raise ValueError(f"--seed must be in [0, {MAX_SEED - args.n + 1}] so that seed+n-1 stays a valid seed, got {args.seed}")
    from keras_dcgan.serving.session import write_grid, write_pngs

    out = pathlib.Path(args.out)
    grid_path = out if out.suffix.lower() == ".png" else out / "grid.png"
    seeds = np.arange(args.seed, args.seed + args.n, dtype=np.int64)
    names = [f"seed_{seed}" for seed in seeds]
    # Before any work: a typo in --out loses nothing, and no earlier result is overwritten unasked.
    check_output_files([grid_path] if grid_path == out else [*(out / f"{name}.png" for name in names), grid_path], "--out", args.force)
    images = _generate_images(args, seeds, _digit(args.digit))
    try:
        make_parent_folder(grid_path)
        written = [] if grid_path == out else write_pngs(out, images, names)
        write_grid(grid_path, images)
    except OSError as error:
        raise ValueError(f"cannot write {error.filename or out}: {error.strerror or error}") from error
    written.append(grid_path)
    what = f"images of the digit {int(args.digit)}" if args.digit is not None else "digits"
    print(f"wrote {len(images)} {what} (seeds {seeds[0]}..{seeds[-1]}) to {out}" + (f" ({len(written)} files)" if len(written) > 1 else ""))
    return 0


def _digit(text):
    """--digit as an integer; its range is the model's to check (argparse's own type errors would print the usage too)."""
    if text is None:
        return None
    try:
        digit = int(text)
    except ValueError:
        raise ValueError(f"--digit must be an integer (0-9 for MNIST), got {text!r}") from None
    if abs(digit) > INT64_MAX:  # no model has that many digits, and numpy's int64 could not hold it
        raise ValueError(f"--digit must be a digit the model draws (0-9 for MNIST), got {digit}")
    return digit


def _generate_images(args, seeds, digit):
    """float32 [n, 28, 28, 1] in [0, 1] from the chosen back end, REQUEST_BATCH at a time; latents made here, so seeds agree everywhere."""
    digits = None if digit is None else np.full(len(seeds), digit, np.int64)
    if path := _model_file(args):
        from keras_dcgan.serving.session import GeneratorSession, InputError

        session = GeneratorSession(path, verify=not args.no_verify)
        if digits is None:
            return np.concatenate([session.generate_from_seeds(batch) for batch in _batches(seeds)])
        try:
            return np.concatenate([
                session.generate_digits(seed_batch, digit_batch) for seed_batch, digit_batch in zip(_batches(seeds), _batches(digits))
            ])
        except InputError as error:
            raise ValueError(f"--digit {digit}: {error}") from error
    from keras_dcgan.serving.rest_client import ServingError

    backend = f"server {args.server}" if args.server else f"gRPC server {args.grpc}"
    try:
        client = _server_client(args)
        if digits is not None:  # the server moves the latents: it knows what its digits mean
            return np.concatenate([
                client.generate_digits(seed_batch, digit_batch) for seed_batch, digit_batch in zip(_batches(seeds), _batches(digits))
            ])
        latents = latents_from_seeds(seeds, client.latent_dim())
        return np.concatenate([client.generate(batch) for batch in _batches(latents)])
    except (ImportError, ServingError) as error:
        raise ValueError(f"{backend}: {error}") from error


def _model_file(args):
    """The file of --onnx or --tflite, whichever was given (None if neither); ValueError for a file of the other suffix."""
    flag = "onnx" if args.onnx else "tflite" if args.tflite else None  # each flag is named after its file's suffix
    if flag is None:
        return None
    path = getattr(args, flag)
    if not path.lower().endswith(f".{flag}"):
        raise ValueError(f"--{flag} takes a .{flag} file, got {path}")
    return path


def _batches(values):
    return [values[start : start + REQUEST_BATCH] for start in range(0, len(values), REQUEST_BATCH)]


def _server_client(args):
    if args.server:
        from keras_dcgan.serving.rest_client import RestClient

        return RestClient(args.server, args.model_name, args.version)
    from keras_dcgan.serving.grpc_client import GrpcClient  # needs the extra keras-dcgan[grpc]

    return GrpcClient(args.grpc, args.model_name, args.version)


def add_serve_command(commands):
    serve = commands.add_parser(
        "serve",
        help="serve an ONNX or LiteRT generator over TF Serving's REST API (for devices without TF Serving)",
        description="Serve the ONNX or LiteRT file, or the version folders under --model-base-path, over the same REST API "
        "as TF Serving: GET /v1/models/NAME, GET /v1/models/NAME/metadata, POST /v1/models/NAME:predict "
        "(signatures serving_default, generate_png, generate_from_seeds), each also at /versions/N and "
        "/labels/LABEL, and over the Open Inference Protocol (KServe v2) on the same port: /v2/health/live, "
        "/v2/health/ready, POST /v2/models/NAME[/versions/N]/infer. Stops cleanly on SIGTERM or Ctrl-C; SIGHUP "
        "reloads an --onnx or --tflite file, or with --model-base-path re-reads --model-config-file. docs/rest-server.md describes the limits and "
        "where the API differs from TF Serving; docs/model-versions.md the version lifecycle; "
        "docs/open-inference.md the v2 routes. A browser page answers at / unless --no-ui (docs/web.md).",
    )
    model = serve.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "--onnx", metavar="FILE", help=f"serve this one exported {ONNX_FILE} with onnxruntime (checked against {MANIFEST_NAME} beside it)"
    )
    model.add_argument(
        "--tflite", metavar="FILE",
        help=f"serve this one exported {LITERT_FILE} with LiteRT (checked against {MANIFEST_NAME} beside it; needs keras-dcgan[litert])",
    )
    model.add_argument(
        "--model-base-path", metavar="FOLDER",
        help="serve the numeric version folders under FOLDER (e.g. exports/dcgan) as TF Serving does: the latest by default, "
        "new ones loaded and checked as they appear (docs/model-versions.md)",
    )
    serve.add_argument(
        "--runtime", choices=MODEL_FILE_ENTRIES, default=None,
        help=f"with --model-base-path, which file of each version folder is served: the ONNX file on onnxruntime, or the "
        f"LiteRT file (needs keras-dcgan[litert]); a folder without it fails to load (default: {MODEL_FILE_ENTRIES[0]})",
    )
    serve.add_argument(
        "--model-config-file", metavar="FILE",
        help="TF Serving model config (text format) giving the version policy and labels of --model-name; "
        "re-read on SIGHUP (with --model-base-path)",
    )
    serve.add_argument(
        "--file-system-poll-wait-seconds", type=positive_seconds, default=1.0, metavar="SECONDS",
        help="how often --model-base-path is looked at for new or removed versions (default: %(default)s)",
    )
    serve.add_argument("--no-verify", action="store_true", help="serve an --onnx or --tflite file that has no manifest.json beside it, unchecked")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network (default: %(default)s)")
    serve.add_argument("--port", type=port_number, default=8501, help="port; 0 picks a free one (default: %(default)s)")
    serve.add_argument("--model-name", default="dcgan", help="name in the URL /v1/models/NAME (default: %(default)s)")
    serve.add_argument("--version", type=positive_integer, default=None, help="version of the --onnx or --tflite file to report (default: the manifest's, else the folder name, else 1)")
    serve.add_argument("--max-batch", type=positive_integer, default=DEFAULT_MAX_BATCH, help="largest batch per request (default: %(default)s)")
    serve.add_argument("--max-body-bytes", type=positive_integer, default=DEFAULT_MAX_BODY_BYTES, help="largest request body; more is 413 (default: %(default)s)")
    serve.add_argument("--request-timeout", type=positive_seconds, default=DEFAULT_REQUEST_TIMEOUT_SECONDS, metavar="SECONDS", help="a request's headers and body must arrive within this, or 408 (default: %(default)s)")
    serve.add_argument("--idle-timeout", type=positive_seconds, default=DEFAULT_IDLE_TIMEOUT_SECONDS, metavar="SECONDS", help="close a connection with no request in progress after this (default: %(default)s)")
    serve.add_argument("--drain-timeout", type=positive_seconds, default=DEFAULT_DRAIN_TIMEOUT_SECONDS, metavar="SECONDS", help="on SIGTERM/Ctrl-C, requests in flight get this long to finish (default: %(default)s)")
    serve.add_argument(
        "--shutdown-delay", type=non_negative_seconds, default=0.0, metavar="SECONDS",
        help="on SIGTERM/Ctrl-C, go on serving this long with /v2/health/ready false before the drain, so that load "
        "balancers stop sending first (default: %(default)s)",
    )
    serve.add_argument(
        "--workers", type=positive_integer, default=None,
        help="server processes sharing the port; each runs its own copy of the model (default: one per core)",
    )
    serve.add_argument("--threads", type=positive_integer, default=1, help="onnxruntime or LiteRT threads per model call; calls already run in parallel, one per worker process (default: %(default)s)")
    serve.add_argument(
        "--batching", action=argparse.BooleanOptionalAction, default=True,
        help="predictions that wait for a busy model share its next call, as TF Serving's --enable_batching with no timeout (default: on)",
    )
    serve.add_argument("--max-batch-rows", type=positive_integer, default=DEFAULT_MAX_BATCH_ROWS, help="rows per shared model call; a larger request runs alone (default: %(default)s)")
    serve.add_argument("--access-log", action="store_true", help="log one line per request to stderr")
    serve.add_argument("--metrics", action="store_true", help="serve Prometheus metrics at /monitoring/prometheus/metrics")
    serve.add_argument("--no-ui", action="store_true", help="no browser page at / (docs/web.md); the REST API is the same either way")
    serve.set_defaults(handler=run_serve)


def run_serve(args):
    from keras_dcgan.serving.runtimes import RUNTIME_NAMES
    from keras_dcgan.serving.server import AppSettings, BatchingOptions, ServerLimits, build_app, open_models, serve
    from keras_dcgan.serving.session import GeneratorSession

    if hasattr(signal, "SIGHUP"):  # until the server's own handler is in place (and in the workers it spawns, until theirs is)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    _check_model_flags(args)
    model_path = _model_file(args)
    runtime = args.runtime or MODEL_FILE_ENTRIES[0]
    session, version = None, 0
    if model_path:
        # Loaded here even with worker processes, which load their own: a bad file is one error, before any worker starts.
        session = GeneratorSession(model_path, threads=args.threads, verify=not args.no_verify)
        version = args.version or session.version or _version_from_folder(session.model_path)
    settings = AppSettings(
        model_path=model_path, verify=not args.no_verify, threads=args.threads, model_name=args.model_name,
        version=version, max_batch=args.max_batch, metrics=args.metrics,
        limits=ServerLimits(args.max_body_bytes, args.request_timeout, args.idle_timeout, args.drain_timeout, args.shutdown_delay),
        batching=BatchingOptions(args.batching, args.max_batch_rows),
        base_path=args.model_base_path, config_path=args.model_config_file, poll_seconds=args.file_system_poll_wait_seconds,
        runtime=runtime, page=not args.no_ui,
    )
    # A bad config or label, or a --runtime whose extra is missing, is one error before any worker starts.
    models = open_models(settings, session)
    if model_path:
        served = f"version {version} from {model_path}"
    else:
        served = f"{_versions_served(models[0])} from {args.model_base_path} with {RUNTIME_NAMES[runtime].runtime}"
    workers = args.workers or available_cores()

    def announce(url):
        processes = f" in {workers} worker processes" if workers > 1 else ""
        print(f"serving {args.model_name} {served}{processes} on {url}", flush=True)

    sock = listening_socket(args.host, args.port)
    raise_open_file_limit()
    if workers > 1:
        from keras_dcgan.serving.workers import serve_workers

        del session, models  # each worker loads its own; this process only supervises them
        serve_workers(settings, workers, sock, on_ready=announce, access_log=args.access_log)
        print("stopped", file=sys.stderr, flush=True)
        return 0
    drained = serve(build_app(settings, models), sock, on_ready=announce, access_log=args.access_log)
    print("stopped" if drained else "stopped with requests still in flight", file=sys.stderr, flush=True)
    return 0


def _check_model_flags(args):
    """Flags that belong to one way of naming the model (one file, or a base path of versions)."""
    if args.model_base_path is None:
        if args.model_config_file is not None:
            raise ValueError("--model-config-file gives the version policy and labels of a --model-base-path; pass one")
        if args.runtime is not None:
            raise ValueError("--runtime picks the file each version folder of a --model-base-path serves; an --onnx or --tflite file's suffix names its runtime")
        return
    for flag, given in (("--version", args.version is not None), ("--no-verify", args.no_verify)):
        if given:
            raise ValueError(
                f"{flag} applies to --onnx and --tflite only: with --model-base-path the versions are the folders' numbers, each checked"
            )


def _versions_served(repository):
    versions = repository.available_versions()
    labels = ", ".join(f"{label} -> {version}" for label, version in sorted(repository.labels.items()))
    described = ("versions " + ", ".join(map(str, versions))) if versions else "no version yet"
    return described + (f" (labels {labels})" if labels else "")


def available_cores():
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def listening_socket(host, port):
    """A socket listening on host:port, or ValueError saying why not (port taken, address not here, privileged port)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error


def raise_open_file_limit():
    """Each connection is a file descriptor: lift the soft limit (often 1,024) to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # an unlimited hard limit may be refused: keep the soft one
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _version_from_folder(model_path):
    """TF Serving's layout is <base>/<name>/<version>/: use the folder name when it is a number."""
    name = pathlib.Path(model_path).resolve().parent.name
    return int(name) if name.isdigit() else 1
