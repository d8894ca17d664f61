"""Helpers the tests share (fixtures stay in conftest.py): where MNIST is, small runs, the CLI in a process."""

import contextlib
import dataclasses
import os
import pathlib
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

from keras_dcgan.config import RunOptions, TrainConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SUBSET_DIR = REPO_ROOT / "tests" / "data" / "mnist_subset"
RUN_OPTION_NAMES = {field.name for field in dataclasses.fields(RunOptions)}
# Samples a test export scores to record how well the generator draws the digits asked (the
# default, 10,000, is the CLI's: test_export.py checks it).
DIGIT_SAMPLES = 200
# The fuzz tests: a few hundred examples run in seconds; no deadline (the machine's speed is not
# what they test) and no example database left in the checkout.
FUZZ_SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def find_full_mnist():
    """The folder of the full MNIST IDX files, from $KERAS_DCGAN_MNIST_DIR or ../shared/data/mnist, or None."""
    candidates = [os.environ.get("KERAS_DCGAN_MNIST_DIR"), REPO_ROOT.parent / "shared" / "data" / "mnist"]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "train-images-idx3-ubyte.gz").exists():
            return pathlib.Path(candidate)
    return None


def networks_under_policy(config, policy="mixed_bfloat16"):
    """(generator, discriminator) of `config` built under Keras' dtype `policy`; the global policy is restored."""
    import keras

    from keras_dcgan.networks import build_discriminator, build_generator

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return build_generator(config), build_discriminator(config)
    finally:
        keras.config.set_dtype_policy(previous)


def small_config(**overrides):
    """An experiment that trains in seconds on the committed subset: narrow networks, few examples."""
    values = dict(
        max_examples=512,
        batch_size=64,
        generator_filters=16,
        discriminator_filters=16,
        latent_dim=32,
        # Over a 16-step run a 0.999 weight average would still be the initial weights; the
        # tests that need the average ask for a short one.
        generator_ema=0.0,
        # The rate these tests' step counts and thresholds were set with; the default (4e-4)
        # was chosen on full-size networks over epochs, not on tiny ones over a few dozen steps.
        generator_lr=8e-4,
        # Constant rates, as the thresholds were set with; test_learning_rate.py trains on the decay.
        learning_rate_decay=0.0,
    )
    return TrainConfig(**{**values, **overrides})


def small_run(run_dir, **overrides):
    """(TrainConfig, RunOptions) of a 2-epoch run of `small_config` in `run_dir`; overrides go to either by name."""
    options = dict(data_dir=str(SUBSET_DIR), run_dir=str(run_dir), epochs=2, backup_every_steps=4)
    options.update({name: value for name, value in overrides.items() if name in RUN_OPTION_NAMES})
    experiment = {name: value for name, value in overrides.items() if name not in RUN_OPTION_NAMES}
    return small_config(**experiment), RunOptions(**options)


def evaluated_run(run_dir, epochs, cache_dir):
    """(TrainConfig, RunOptions) of `small_run` keeping a weight average of the generator (0.9) and scoring
    200 samples every 2nd epoch with the classifier cached in `cache_dir`."""
    return small_run(run_dir, epochs=epochs, generator_ema=0.9, eval_every=2, eval_samples=200, cache_dir=str(cache_dir))


def run_cli(*args, env=None, timeout=600, check=False):
    """Run `python -m keras_dcgan.cli ARGS` in a fresh process; returns CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    completed = subprocess.run(
        [sys.executable, "-m", "keras_dcgan.cli", *map(str, args)],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO_ROOT,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"keras-dcgan {' '.join(map(str, args))} failed:\n{completed.stderr[-3000:]}")
    return completed


@contextlib.contextmanager
def read_only_folder(parent):
    """A new empty folder under `parent` that this user cannot write to (skips the test as root, whom permissions do not stop)."""
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop root from writing")
    folder = pathlib.Path(parent) / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        yield folder
    finally:
        folder.chmod(0o700)
