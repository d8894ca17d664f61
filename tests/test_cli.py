"""The command line: help, and bad flags rejected with a message and a non-zero exit."""

import argparse
import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT, SUBSET_DIR, read_only_folder, run_cli
from keras_dcgan.cli import build_parser, config_from_args, is_startup_noise, main
from keras_dcgan.config import RunOptions, TrainConfig


def test_every_config_field_is_a_flag():
    args = build_parser().parse_args(["fit", "--epochs", "3", "--leaky-relu-slope", "0.1", "--data-dir", "x"])
    config, options = config_from_args(args)
    assert (options.epochs, config.leaky_relu_slope, options.data_dir) == (3, 0.1, "x")
    assert config_from_args(build_parser().parse_args(["fit"])) == (TrainConfig(), RunOptions())


@pytest.mark.parametrize("output_conv", [True, False])
def test_worker_flags_reproduce_the_config_booleans_included(output_conv):
    from keras_dcgan.launcher import fit_flags

    run = TrainConfig(generator_output_conv=output_conv), RunOptions(epochs=3, data_dir="x")
    assert config_from_args(build_parser().parse_args(["fit", *fit_flags(*run)])) == run
    flag = build_parser().parse_args(["fit", "--no-generator-output-conv"]).generator_output_conv
    assert flag is False


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--beta1", "1.5"], "beta1 must be in [0, 1)"),
        (["--max-examples", "10"], "max_examples (10) must be at least batch_size (64)"),
        (["--generator-lr", "-1"], "generator_lr must be a finite positive number, got -1.0"),
        (["--discriminator-lr", "inf"], "discriminator_lr must be a finite positive number, got inf"),
        (["--seed", "-1"], "seed must be 0 or more, got -1"),
        (["--eval-every", "-2"], "eval_every must be 0 (never) or a number of epochs, got -2"),
    ],
)
def test_invalid_values_exit_2_with_the_field_named_and_write_nothing(flags, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["fit", *flags, "--run-dir", str(run_dir), "--data-dir", str(SUBSET_DIR)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not run_dir.exists()  # no config.json: the corrected command starts the run, not a conflict


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_run_dir_that_cannot_be_a_folder_is_refused_before_any_work(where, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    run_dir = a_file if where == "a file" else a_file / "run"
    assert main(["fit", "--run-dir", str(run_dir), "--data-dir", str(SUBSET_DIR)]) == 2
    error = capsys.readouterr().err
    assert "is a file, not a folder" in error and error.count("\n") == 1
    assert a_file.read_text() == "mine"


def test_read_only_run_dir_is_refused_before_any_work(tmp_path, capsys):
    with read_only_folder(tmp_path) as read_only:
        assert main(["fit", "--run-dir", str(read_only / "run"), "--data-dir", str(SUBSET_DIR)]) == 2
        assert capsys.readouterr().err == (
            f"keras-dcgan fit: error: --run-dir {read_only / 'run'} cannot be written: {read_only} is read-only for this user\n"
        )
        assert os.listdir(read_only) == []


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--strategy", "gpus"], "invalid choice: 'gpus'"),
        (["--batch-size", "many"], "invalid int value: 'many'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_malformed_flags_exit_2(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_missing_data_dir_is_a_clear_error_from_the_real_command(tmp_path):
    completed = run_cli("fit", "--data-dir", tmp_path / "nowhere", "--run-dir", tmp_path / "run")
    assert completed.returncode == 2
    assert "--data-dir" in completed.stderr and "no such folder" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_help_lists_the_flags():
    completed = run_cli("fit", "--help")
    assert completed.returncode == 0
    for flag in ("--epochs", "--batch-size", "--latent-dim", "--leaky-relu-slope", "--data-dir", "--strategy"):
        assert flag in completed.stdout


def test_version_prints_the_package_version(capsys):
    import keras_dcgan

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"keras-dcgan {keras_dcgan.__version__}"


def test_every_subcommand_help_ends_with_an_example():
    parser = build_parser()
    subcommands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for name, subcommand in subcommands.choices.items():
        assert f"example:\n  keras-dcgan {name} " in subcommand.format_help(), name


# Lines a CPU-only machine printed while `keras-dcgan fit` started (TensorFlow 2.21).
STARTUP_LINES = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796136657.367443    6104 port.cc:153] oneDNN custom operations are on. You may see slightly "
    b"different numerical results due to floating-point round-off errors from different computation orders.\n",
    b"I0000 00:00:1796136657.367798    6104 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n",
]
CUDA_PROBE_LINE = (
    b"E0000 00:00:1796136661.806671    6104 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    b"Failed call to cuInit: UNKNOWN ERROR (303)\n"
)


def test_startup_noise_is_filtered_but_errors_are_not():
    for line in STARTUP_LINES:
        assert is_startup_noise(line, has_nvidia_device=False) and is_startup_noise(line, has_nvidia_device=True)
    assert is_startup_noise(CUDA_PROBE_LINE, has_nvidia_device=False)
    assert not is_startup_noise(CUDA_PROBE_LINE, has_nvidia_device=True)  # a GPU machine's broken driver
    for line in (
        b"E0000 00:00:1796136661.806671    6104 op_kernel.cc:1857] OP_REQUIRES failed: OOM when allocating tensor\n",
        b"F0000 00:00:1796136661.806671    6104 logging.cc:12] Check failed: ok\n",
        b"Traceback (most recent call last):\n",
        b"keras-dcgan fit: error: --data-dir: no such folder\n",
    ):
        assert not is_startup_noise(line, has_nvidia_device=False), line


# A process in which some modules are not installed: importing them fails as a missing package does,
# and importlib.util.find_spec finds none of them. Which ones: $NOT_INSTALLED (default: the whole training extra).
NOT_INSTALLED = """
import importlib.abc, os, sys
from keras_dcgan.cli import main
from keras_dcgan.train_extra import TRAIN_EXTRA_MODULES

missing = set(os.environ["NOT_INSTALLED"].split(",")) if os.environ.get("NOT_INSTALLED") else TRAIN_EXTRA_MODULES

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in missing:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
sys.exit(main(sys.argv[1:]))
"""


def run_without(modules, *args):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NOT_INSTALLED": ",".join(modules)}
    return subprocess.run(
        [sys.executable, "-c", NOT_INSTALLED, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=environment,
    )


@pytest.mark.parametrize("command", [["fit", "--epochs", "1"], ["export", "runs/none"], ["evaluate", "runs/none"], ["latent-walk", "runs/none"]])
def test_training_commands_without_the_extra_say_what_to_install(command):
    completed = run_without([], *command)
    assert completed.returncode == 2
    assert completed.stderr == (
        f"keras-dcgan {command[0]}: error: this command needs the training extra, and tensorflow, keras, tensorboard, "
        "tensorflow-datasets, importlib_resources, matplotlib, tf2onnx, onnx, onnxconverter-common are not installed: "
        'pip install "keras-dcgan[train]"\n'
    )


def test_fit_with_tensorflow_but_without_tensorboard_fails_before_any_work(tmp_path):
    """As after `pip install "keras-dcgan[grpc]"`: TensorFlow, but not the rest of the training extra."""
    run_dir = tmp_path / "run"
    completed = run_without(["tensorboard"], "fit", "--data-dir", SUBSET_DIR, "--run-dir", run_dir, "--epochs", 1)
    assert completed.returncode == 2
    assert completed.stderr == (
        'keras-dcgan fit: error: this command needs the training extra, and tensorboard is not installed: pip install "keras-dcgan[train]"\n'
    )
    assert not run_dir.exists()  # no epoch trained, no checkpoint written


@pytest.mark.parametrize("command, out_flag", [("export", "--out"), ("evaluate", "--json"), ("latent-walk", "--output")])
def test_commands_reading_a_run_name_every_missing_package_of_the_extra(trained_run_dir, tmp_path, command, out_flag):
    completed = run_without(["tensorboard", "tensorflow_datasets", "tf2onnx"], command, trained_run_dir, out_flag, tmp_path / "out")
    assert completed.returncode == 2
    assert completed.stderr == (
        f"keras-dcgan {command}: error: this command needs the training extra, and tensorboard, tensorflow-datasets, tf2onnx "
        'are not installed: pip install "keras-dcgan[train]"\n'
    )
    assert list(tmp_path.iterdir()) == []
