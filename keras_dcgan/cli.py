"""The `keras-dcgan` command. A thin layer: flags map onto TrainConfig and RunOptions, work is done by the library.

Heavy imports (TensorFlow) happen inside the subcommands, so `--help` and flag errors are instant.
"""

import argparse
import dataclasses
import os
import sys

from keras_dcgan.config import RunOptions, TrainConfig
from keras_dcgan.evaluation.command import add_evaluate_command
from keras_dcgan.latent_walk import add_latent_walk_command
from keras_dcgan.run_dir import RunDir
from keras_dcgan.export.command import add_export_command
from keras_dcgan.serving.command import add_generate_command, add_serve_command


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

        return launch_fit(config, options, args.workers)
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
        "(a launch option, not saved in config.json; see the README's distributed section)",
    )
    fit.set_defaults(handler=run_fit)


def build_parser():
    """Each subcommand lives beside the library code it drives and registers itself here."""
    parser = argparse.ArgumentParser(
        prog="keras-dcgan",
        description="Train a DCGAN on MNIST with Keras 3 and ship its generator.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_fit_command(commands)
    add_evaluate_command(commands)
    add_latent_walk_command(commands)
    add_export_command(commands)
    add_generate_command(commands)
    add_serve_command(commands)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:  # user errors: bad flags, bad data, conflicting run dir
        if os.environ.get("KERAS_DCGAN_TRACEBACK"):
            raise
        print(f"keras-dcgan {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
