"""The `keras-dcgan` command. A thin layer: flags map onto TrainConfig and RunOptions, work is done by the library.

Heavy imports (TensorFlow) happen inside the subcommands, so `--help` and flag errors are instant.
"""

import argparse
import dataclasses
import glob
import os
import re
import sys
import textwrap
import threading

from keras_dcgan import __version__
from keras_dcgan.config import RunOptions, TrainConfig
from keras_dcgan.evaluation.command import add_evaluate_command
from keras_dcgan.evaluation.generators import is_exported_file
from keras_dcgan.latent_walk import add_latent_walk_command
from keras_dcgan.run_dir import RunDir
from keras_dcgan.export.command import add_export_command
from keras_dcgan.serving.command import add_generate_command, add_serve_command
from keras_dcgan.serving.web_bundle import add_web_command
from keras_dcgan.train_extra import INSTALL_TRAIN_EXTRA, TRAIN_EXTRA_MODULES, missing_train_extra_message, missing_train_packages


def _flag(name):
    return "--" + name.replace("_", "-")


# The experiment's flags first, then where and how to run it.
FIT_DATACLASSES = (TrainConfig, RunOptions)


def add_config_flags(parser):
    """One flag per field of TrainConfig and RunOptions, with its default, help text and choices."""
    for config_field in (field for kind in FIT_DATACLASSES for field in dataclasses.fields(kind)):
        metadata = config_field.metadata
        kwargs = {"default": config_field.default, "help": f"{metadata['help']} (default: %(default)s)"}
        value_type = metadata.get("type", type(config_field.default))
        if value_type is bool:  # --name / --no-name
            parser.add_argument(_flag(config_field.name), dest=config_field.name, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        kwargs["type"] = value_type
        if "choices" in metadata:
            kwargs["choices"] = metadata["choices"]
        parser.add_argument(_flag(config_field.name), dest=config_field.name, metavar=config_field.name.upper(), **kwargs)


def config_from_args(args):
    """(TrainConfig, RunOptions) of the parsed `fit` flags, each validated."""
    return tuple(kind(**{field.name: getattr(args, field.name) for field in dataclasses.fields(kind)}) for kind in FIT_DATACLASSES)


def run_fit(args):
    config, options = config_from_args(args)  # validate flags before the slow TensorFlow import
    RunDir(options.run_dir).check_writable()
    if args.workers is not None:
        from keras_dcgan.launcher import launch_fit

        return launch_fit(config, options, args.workers)  # each worker is a `keras-dcgan fit` of its own
    start_tensorflow_quietly()
    from keras_dcgan.callbacks import TrainingDiverged
    from keras_dcgan.training import train

    try:
        # One line per epoch when the output goes to a pipe or log, not a progress bar redrawn with \r.
        train(config, options, verbose="auto" if sys.stdout.isatty() else 2)
    except TrainingDiverged as error:
        print(f"keras-dcgan fit: {error}", file=sys.stderr)
        return 3
    return 0


def add_fit_command(commands):
    fit = commands.add_parser(
        "fit",
        help="train (or resume) a DCGAN",
        description="Train a DCGAN, or resume the run in --run-dir. Data: TFDS --dataset by default, "
        "or the IDX files in --data-dir (offline).",
    )
    add_config_flags(fit)
    fit.add_argument(
        "--workers", type=int, metavar="N",
        help="run the job as N local worker processes of a multi-worker cluster on 127.0.0.1 "
        "(a launch option, not saved in config.json; see docs/distributed.md)",
    )
    fit.set_defaults(handler=run_fit)


# One example per subcommand, shown at the end of its --help.
EXAMPLES = {
    "fit": "keras-dcgan fit --data-dir ~/mnist --epochs 1 --run-dir runs/first",
    "evaluate": "keras-dcgan evaluate runs/dcgan --samples 2000",
    "latent-walk": "keras-dcgan latent-walk runs/dcgan --seeds 3,14,15 --steps 16 --output walk.gif",
    "export": "keras-dcgan export runs/dcgan --data-dir ~/mnist --out exports --name dcgan",
    "generate": "keras-dcgan generate --onnx exports/dcgan/1/generator.onnx --digit 7 --n 16 --out sevens.png",
    "serve": "keras-dcgan serve --onnx exports/dcgan/1/generator.onnx --port 8501",
    "web": "keras-dcgan web exports/dcgan/1 --out site && python -m http.server --directory site 8000",
}
EXAMPLE_HEADING = "example:\n"
HELP_WIDTH = 78


def build_parser():
    """Each subcommand lives beside the library code it drives and registers itself here."""
    parser = argparse.ArgumentParser(
        prog="keras-dcgan",
        description="Train a DCGAN on MNIST with Keras 3 and ship its generator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_fit_command(commands)
    add_evaluate_command(commands)
    add_latent_walk_command(commands)
    add_export_command(commands)
    add_generate_command(commands)
    add_serve_command(commands)
    add_web_command(commands)
    for name, command in commands.choices.items():
        if name in EXAMPLES:
            # Raw text keeps the example on one line, so that it can be pasted; the description,
            # which argparse would otherwise wrap, is wrapped here.
            command.formatter_class = argparse.RawDescriptionHelpFormatter
            command.description = textwrap.fill(command.description, HELP_WIDTH) if command.description else None
            command.epilog = f"{EXAMPLE_HEADING}  {EXAMPLES[name]}"
    return parser


# TensorFlow's C++ start-up lines: absl's notice that logging is not initialised yet, and
# INFO/WARNING lines printed before TF_CPP_MIN_LOG_LEVEL takes effect (it cannot hide them).
STARTUP_NOISE = re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
# The failed CUDA probe: expected where there is no NVIDIA device, an error where there is one.
CUDA_PROBE_FAILURE = re.compile(rb"E\d{4} [\d:.]+ +\d+ \S+:\d+\] failed call to cuInit: ")


def is_startup_noise(line, has_nvidia_device):
    return bool(STARTUP_NOISE.match(line) or (not has_nvidia_device and CUDA_PROBE_FAILURE.match(line)))


def start_tensorflow_quietly():
    """Import TensorFlow and let it probe its devices with those start-up lines filtered out of stderr.

    The lines are written by C++ straight to file descriptor 2, so they are filtered there, and only
    for the start-up: every other line (and every line after it) passes through unchanged.
    """
    has_nvidia_device = bool(glob.glob("/dev/nvidia[0-9]*"))
    sys.stderr.flush()
    original_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump_output = os.dup(original_stderr)  # the pump's own copy: original_stderr is closed when the window ends

    def pass_through_all_but_noise():
        with os.fdopen(read_end, "rb") as lines, os.fdopen(pump_output, "wb", buffering=0) as stderr:
            for line in lines:
                if not is_startup_noise(line, has_nvidia_device):
                    stderr.write(line)

    pump = threading.Thread(target=pass_through_all_but_noise, daemon=True)
    pump.start()
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here, inside the filter
    finally:
        sys.stderr.flush()
        os.dup2(original_stderr, 2)  # closes the pipe's last write end: the pump drains and stops
        os.close(original_stderr)
        pump.join(timeout=10)


def missing_train_extra(error):
    """The one-line error for a ModuleNotFoundError that `keras-dcgan[train]` would fix, else None."""
    if (error.name or "").partition(".")[0] not in TRAIN_EXTRA_MODULES:
        return None
    return f"this command needs {error.name}, which comes with the training extra: {INSTALL_TRAIN_EXTRA}"


def needs_train_extra(args):
    """Whether the command imports TensorFlow: every one but generate, serve and a latent walk of an exported file."""
    if args.command == "latent-walk":
        return not is_exported_file(args.source)
    return args.command in ("fit", "evaluate", "export")


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    parser = build_parser()
    args = parser.parse_args(argv)
    if needs_train_extra(args):
        missing = missing_train_packages()
        if missing:
            print(f"keras-dcgan {args.command}: error: {missing_train_extra_message(missing)}", file=sys.stderr)
            return 2
    try:
        if args.command in ("export", "evaluate"):
            start_tensorflow_quietly()
        return args.handler(args)
    except ModuleNotFoundError as error:
        message = missing_train_extra(error)
        if message is None or os.environ.get("KERAS_DCGAN_TRACEBACK"):
            raise
        print(f"keras-dcgan {args.command}: error: {message}", file=sys.stderr)
        return 2
    except ValueError as error:  # user errors: bad flags, bad data, conflicting run dir
        if os.environ.get("KERAS_DCGAN_TRACEBACK"):
            raise
        print(f"keras-dcgan {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
