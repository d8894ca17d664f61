"""Every numeric flag of generate, latent-walk, evaluate and export: huge, negative and non-numbers are one-line errors."""

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import FUZZ_SETTINGS, run_cli
from keras_dcgan.flag_types import integer_flag

HUGE = "99999999999999999999"  # beyond int64: numpy raises OverflowError for it

# (command line, the last line of stderr). Sources need not exist: each flag is refused before any file is read.
CASES = {
    "generate --digit huge": (["generate", "--onnx", "g.onnx", "--digit", HUGE], f"--digit must be a digit the model draws (0-9 for MNIST), got {HUGE}"),
    "generate --digit word": (["generate", "--onnx", "g.onnx", "--digit", "seven"], "--digit must be an integer (0-9 for MNIST), got 'seven'"),
    "generate --seed huge": (["generate", "--onnx", "g.onnx", "--seed", HUGE], f"--seed must be in [0, 2147483632] so that seed+n-1 stays a valid seed, got {HUGE}"),
    "generate --seed negative": (["generate", "--onnx", "g.onnx", "--seed", "-1"], "--seed must be in [0, 2147483632] so that seed+n-1 stays a valid seed, got -1"),
    "generate --seed word": (["generate", "--onnx", "g.onnx", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    "generate --n huge": (["generate", "--onnx", "g.onnx", "--n", HUGE], "argument --n: at most 10,000 digits per run (one grid holds them all), got 99,999,999,999,999,999,999"),
    "generate --n negative": (["generate", "--onnx", "g.onnx", "--n", "-5"], "argument --n: must be at least 1, got -5"),
    "generate --n word": (["generate", "--onnx", "g.onnx", "--n", "many"], "argument --n: must be an integer, got 'many'"),
    "generate --version huge": (["generate", "--server", "http://127.0.0.1:9", "--version", HUGE], "argument --version: must be in [1, 9,223,372,036,854,775,807], got 99,999,999,999,999,999,999"),
    "generate --version zero": (["generate", "--server", "http://127.0.0.1:9", "--version", "0"], "argument --version: must be at least 1, got 0"),
    "latent-walk --seeds huge": (["latent-walk", "g.onnx", "--seeds", f"1,{HUGE}"], f"--seeds must be integers in [0, 2147483647], got {HUGE}"),
    "latent-walk --seeds negative": (["latent-walk", "g.onnx", "--seeds", "3,-1"], "--seeds must be integers in [0, 2147483647], got -1"),
    "latent-walk --seeds word": (["latent-walk", "g.onnx", "--seeds", "1,two"], "--seeds must be integers separated by commas, got '1,two'"),
    "latent-walk --steps huge": (["latent-walk", "g.onnx", "--steps", HUGE], f"4 seeds x --steps {HUGE} = {4 * int(HUGE)} frames; a walk has at most 1000: lower --steps or pass fewer --seeds"),
    "latent-walk --steps negative": (["latent-walk", "g.onnx", "--steps", "-2"], "--steps must be at least 2, got -2"),
    "latent-walk --steps word": (["latent-walk", "g.onnx", "--steps", "1.5"], "argument --steps: invalid int value: '1.5'"),
    "latent-walk --epoch negative": (["latent-walk", "g.onnx", "--epoch", "-3"], "argument --epoch: must be at least 1, got -3"),
    "latent-walk --epoch word": (["latent-walk", "g.onnx", "--epoch", "last"], "argument --epoch: must be an integer, got 'last'"),
    "evaluate --seed huge": (["evaluate", "g.onnx", "--seed", HUGE], "argument --seed: must be in [0, 2,147,483,647], got 99,999,999,999,999,999,999"),
    "evaluate --seed negative": (["evaluate", "g.onnx", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    "evaluate --seed word": (["evaluate", "g.onnx", "--seed", "x"], "argument --seed: must be an integer, got 'x'"),
    "evaluate --samples huge": (["evaluate", "g.onnx", "--samples", HUGE], "argument --samples: must be in [2, 2,147,483,648], got 99,999,999,999,999,999,999"),
    "evaluate --samples one": (["evaluate", "g.onnx", "--samples", "1"], "argument --samples: must be at least 2, got 1"),
    "evaluate --samples word": (["evaluate", "g.onnx", "--samples", "all"], "argument --samples: must be an integer, got 'all'"),
    "evaluate --epoch huge": (["evaluate", "g.onnx", "--epoch", HUGE], "argument --epoch: must be in [1, 9,223,372,036,854,775,807], got 99,999,999,999,999,999,999"),
    "evaluate --epoch zero": (["evaluate", "g.onnx", "--epoch", "0"], "argument --epoch: must be at least 1, got 0"),
    "export --version huge": (["export", "runs/none", "--version", HUGE], "argument --version: must be in [1, 9,223,372,036,854,775,807], got 99,999,999,999,999,999,999"),
    "export --version negative": (["export", "runs/none", "--version", "-1"], "argument --version: must be at least 1, got -1"),
    "export --epoch word": (["export", "runs/none", "--epoch", "x"], "argument --epoch: must be an integer, got 'x'"),
    "export --digit-samples huge": (["export", "runs/none", "--digit-samples", HUGE], "argument --digit-samples: at most 100,000 samples (they are scored in one batch), got 99,999,999,999,999,999,999"),
    "export --digit-samples zero": (["export", "runs/none", "--digit-samples", "0"], "argument --digit-samples: must be at least 1, got 0"),
}


@pytest.mark.parametrize("name", CASES)
def test_a_bad_number_is_a_one_line_error_with_exit_2(name, tmp_path):
    args, message = CASES[name]
    out_flag = {"generate": "--out", "latent-walk": "--output"}.get(args[0])
    completed = run_cli(*args, *([out_flag, tmp_path / "out.png" if out_flag == "--out" else tmp_path / "out.gif"] if out_flag else []))
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.splitlines()[-1] == f"keras-dcgan {args[0]}: error: {message}"
    assert list(tmp_path.iterdir()) == []


@FUZZ_SETTINGS
@given(st.one_of(st.text(), st.integers().map(str), st.integers(min_value=-(2**70), max_value=2**70).map(str)))
def test_an_integer_flag_returns_a_value_in_range_or_refuses_it(text):
    parse = integer_flag(1, 2**31)
    try:
        value = parse(text)
    except argparse.ArgumentTypeError:
        return
    assert isinstance(value, int) and 1 <= value <= 2**31
