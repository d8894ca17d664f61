"""The `generate` and `serve` subcommands. Imports no TensorFlow: both run on a device with onnxruntime only.

`generate --grpc` is the exception: it needs the optional extra `keras-dcgan[grpc]`
(tensorflow-serving-api, which pulls in TensorFlow), imported only when asked for.
"""

import pathlib
import sys

import numpy as np

from keras_dcgan.latents import MAX_SEED, latents_from_seeds

DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_BODY_BYTES = 4 << 20  # a batch of 256 latents of size 100 is ~0.5 MB of JSON
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_IDLE_TIMEOUT_SECONDS = 30.0
REQUEST_BATCH = 64  # latents per request from `generate` to a server: under any --max-batch, small answers


def positive_integer(text):
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def positive_seconds(text):
    value = float(text)
    if not value > 0:
        raise ValueError(f"must be more than 0, got {value}")
    return value


def add_generate_command(commands):
    generate = commands.add_parser(
        "generate",
        help="draw digits from an exported generator: ONNX file, TF Serving (REST or gRPC) or keras-dcgan serve",
        description="Draw --n digits for the seeds --seed, --seed+1, ... from one back end. Seed N gives the same "
        "digit on every back end. --out FILE.png writes one grid; --out FOLDER writes FOLDER/grid.png and "
        "one FOLDER/seed_N.png per digit.",
    )
    backend = generate.add_mutually_exclusive_group(required=True)
    backend.add_argument("--onnx", metavar="FILE", help="run this ONNX file with onnxruntime (checks manifest.json beside it)")
    backend.add_argument("--server", metavar="URL", help="TF Serving REST endpoint, e.g. http://127.0.0.1:8501")
    backend.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving gRPC endpoint, e.g. 127.0.0.1:8500 (needs keras-dcgan[grpc])")
    generate.add_argument("--model-name", default="dcgan", help="served model name (default: %(default)s)")
    generate.add_argument("--version", type=int, default=None, help="served model version (default: the latest)")
    generate.add_argument("--n", type=positive_integer, default=16, help="number of digits (default: %(default)s)")
    generate.add_argument("--seed", type=int, default=0, help="first seed; digit i uses seed+i (default: %(default)s)")
    generate.add_argument(
        "--digit", default=None,
        help="draw this digit every time (0-9 for MNIST; an export whose manifest records 'digits', see docs/digits.md)",
    )
    generate.add_argument("--out", default="digits.png", help="FILE.png for a grid, or a FOLDER for grid + one PNG each (default: %(default)s)")
    generate.set_defaults(handler=run_generate)


def run_generate(args):
    if not 0 <= args.seed <= MAX_SEED - args.n + 1:
        raise ValueError(f"--seed must be in [0, {MAX_SEED - args.n + 1}] so that seed+n-1 stays a valid seed, got {args.seed}")
    from keras_dcgan.serving.session import write_grid, write_pngs

    seeds = np.arange(args.seed, args.seed + args.n, dtype=np.int64)
    images = _generate_images(args, seeds, _digit(args.digit))
    out = pathlib.Path(args.out)
    if out.suffix.lower() == ".png":
        out.parent.mkdir(parents=True, exist_ok=True)
        write_grid(out, images)
        written = [out]
    else:
        written = write_pngs(out, images, [f"seed_{seed}" for seed in seeds])
        write_grid(out / "grid.png", images)
        written.append(out / "grid.png")
    asked = f", each a {int(args.digit)}," if args.digit is not None else ""
    print(f"wrote {len(images)} digits{asked} (seeds {seeds[0]}..{seeds[-1]}) to {out}" + (f" ({len(written)} files)" if len(written) > 1 else ""))
    return 0


def _digit(text):
    """--digit as an integer; its range is the model's to check (argparse's own type errors would print the usage too)."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--digit must be an integer (0-9 for MNIST), got {text!r}") from None


def _generate_images(args, seeds, digit):
    """float32 [n, 28, 28, 1] in [0, 1] from the chosen back end; latents made here, so seeds agree everywhere."""
    digits = None if digit is None else np.full(len(seeds), digit, np.int64)
    if args.onnx:
        from keras_dcgan.serving.session import GeneratorSession, InputError

        session = GeneratorSession(args.onnx)
        if digits is None:
            return session.generate_from_seeds(seeds)
        try:
            return session.generate_digits(seeds, digits)
        except InputError as error:
            raise ValueError(f"--digit {digit}: {error}") from error
    from keras_dcgan.serving.rest_client import ServingError

    backend = f"server {args.server}" if args.server else f"gRPC server {args.grpc}"
    try:
        client = _server_client(args)
        if digits is not None:  # the server moves the latents: it knows what its digits mean
            return np.concatenate([
                client.generate_digits(seeds[start : start + REQUEST_BATCH], digits[start : start + REQUEST_BATCH])
                for start in range(0, len(seeds), REQUEST_BATCH)
            ])
        latents = latents_from_seeds(seeds, client.latent_dim())
        batches = [latents[start : start + REQUEST_BATCH] for start in range(0, len(latents), REQUEST_BATCH)]
        return np.concatenate([client.generate(batch) for batch in batches])
    except (ImportError, ServingError) as error:
        raise ValueError(f"{backend}: {error}") from error


def _server_client(args):
    if args.server:
        from keras_dcgan.serving.rest_client import RestClient

        return RestClient(args.server, args.model_name, args.version)
    from keras_dcgan.serving.grpc_client import GrpcClient  # needs the extra keras-dcgan[grpc]

    return GrpcClient(args.grpc, args.model_name, args.version)


def add_serve_command(commands):
    serve = commands.add_parser(
        "serve",
        help="serve an ONNX generator over TF Serving's REST API (for devices without TF Serving)",
        description="Serve the ONNX file over the same REST API as TF Serving: GET /v1/models/NAME, "
        "GET /v1/models/NAME/metadata, POST /v1/models/NAME:predict (signatures serving_default, "
        "generate_png, generate_from_seeds). Stops cleanly on SIGTERM or Ctrl-C.",
    )
    serve.add_argument("--onnx", metavar="FILE", required=True, help="the exported generator.onnx (checked against manifest.json beside it)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8501, help="port; 0 picks a free one (default: %(default)s)")
    serve.add_argument("--model-name", default="dcgan", help="name in the URL /v1/models/NAME (default: %(default)s)")
    serve.add_argument("--version", type=int, default=None, help="version to report (default: the manifest's, else the folder name, else 1)")
    serve.add_argument("--max-batch", type=positive_integer, default=DEFAULT_MAX_BATCH, help="largest batch per request (default: %(default)s)")
    serve.add_argument("--max-body-bytes", type=positive_integer, default=DEFAULT_MAX_BODY_BYTES, help="largest request body (default: %(default)s)")
    serve.add_argument("--max-connections", type=positive_integer, default=DEFAULT_MAX_CONNECTIONS, help="open connections served at once; more get 503 (default: %(default)s)")
    serve.add_argument("--idle-timeout", type=positive_seconds, default=DEFAULT_IDLE_TIMEOUT_SECONDS, metavar="SECONDS", help="close idle connections and stalled bodies after this long (default: %(default)s)")
    serve.add_argument("--threads", type=positive_integer, default=1, help="onnxruntime threads per request; requests already run in parallel (default: %(default)s)")
    serve.set_defaults(handler=run_serve)


def run_serve(args):
    from keras_dcgan.serving.rest_api import PredictionApi
    from keras_dcgan.serving.server import ServerLimits, serve
    from keras_dcgan.serving.session import GeneratorSession

    session = GeneratorSession(args.onnx, threads=args.threads)
    version = args.version or session.version or _version_from_folder(session.onnx_path)
    api = PredictionApi(session, args.model_name, version, args.max_batch)

    def announce(url):
        print(f"serving {args.model_name} version {version} from {args.onnx} on {url}", flush=True)

    limits = ServerLimits(args.max_body_bytes, args.max_connections, args.idle_timeout)
    try:
        drained = serve(api, limits, args.host, args.port, on_ready=announce)
    except OSError as error:  # port taken, address not on this machine, privileged port
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from error
    print("stopped" if drained else "stopped with requests still in flight", file=sys.stderr, flush=True)
    return 0


def _version_from_folder(onnx_path):
    """TF Serving's layout is <base>/<name>/<version>/: use the folder name when it is a number."""
    name = pathlib.Path(onnx_path).resolve().parent.name
    return int(name) if name.isdigit() else 1
