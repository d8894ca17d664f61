"""The command line: help, and bad flags rejected with a message and a non-zero exit."""

import os

import pytest

from helpers import SUBSET_DIR, read_only_folder, run_cli
from keras_dcgan.cli import build_parser, config_from_args, main
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
