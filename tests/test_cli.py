"""The command line: help, and bad flags rejected with a message and a non-zero exit."""

import pytest

from keras_dcgan.cli import build_parser, config_from_args, main
from keras_dcgan.config import TrainConfig
from tests.conftest import run_cli


def test_every_config_field_is_a_flag():
    args = build_parser().parse_args(["fit", "--epochs", "3", "--leaky-relu-slope", "0.1", "--data-dir", "x"])
    config = config_from_args(args)
    assert (config.epochs, config.leaky_relu_slope, config.data_dir) == (3, 0.1, "x")
    assert config_from_args(build_parser().parse_args(["fit"])) == TrainConfig()


@pytest.mark.parametrize("output_conv", [True, False])
def test_worker_flags_reproduce_the_config_booleans_included(output_conv):
    from keras_dcgan.launcher import fit_flags

    config = TrainConfig(generator_output_conv=output_conv, epochs=3, data_dir="x")
    assert config_from_args(build_parser().parse_args(["fit", *fit_flags(config)])) == config
    flag = build_parser().parse_args(["fit", "--no-generator-output-conv"]).generator_output_conv
    assert flag is False


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--beta1", "1.5"], "beta1 must be in [0, 1)"),
        (["--max-examples", "10"], "max_examples (10) must be at least batch_size (64)"),
        (["--generator-lr", "-1"], "generator_lr must be positive"),
    ],
)
def test_invalid_values_exit_2_with_the_field_named(flags, message, capsys):
    assert main(["fit", *flags]) == 2
    assert message in capsys.readouterr().err


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
