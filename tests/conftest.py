"""Shared fixtures: where MNIST is, small configs, and one trained run reused by many tests.

Data:
- `mnist_subset_dir`: 3,000 + 1,000 real MNIST images committed under tests/data (always there).
- `full_mnist_dir`: the full IDX files, from $KERAS_DCGAN_MNIST_DIR or ../shared/data/mnist
  next to the checkout; tests that need them are skipped, saying why, where they are absent.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from keras_dcgan.config import TrainConfig

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SUBSET_DIR = REPO_ROOT / "tests" / "data" / "mnist_subset"


def find_full_mnist():
    candidates = [os.environ.get("KERAS_DCGAN_MNIST_DIR"), REPO_ROOT.parent / "shared" / "data" / "mnist"]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "train-images-idx3-ubyte.gz").exists():
            return pathlib.Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_subset_dir():
    return SUBSET_DIR


@pytest.fixture(scope="session")
def full_mnist_dir():
    folder = find_full_mnist()
    if folder is None:
        pytest.skip("full MNIST IDX files not found: set KERAS_DCGAN_MNIST_DIR or place them in ../shared/data/mnist")
    return folder


@pytest.fixture(scope="session", autouse=True)
def classifier_cache_dir(tmp_path_factory):
    """Exports of generators that take digits score them with the evaluation classifier: cache it per test session."""
    if os.environ.get("KERAS_DCGAN_CACHE_DIR"):
        yield os.environ["KERAS_DCGAN_CACHE_DIR"]
        return
    os.environ["KERAS_DCGAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("classifier_cache_dir"))
    yield os.environ["KERAS_DCGAN_CACHE_DIR"]
    del os.environ["KERAS_DCGAN_CACHE_DIR"]


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


def small_config(run_dir, **overrides):
    """A config that trains in seconds on the committed subset: narrow networks, few examples."""
    values = dict(
        data_dir=str(SUBSET_DIR),
        run_dir=str(run_dir),
        max_examples=512,
        batch_size=64,
        epochs=2,
        generator_filters=16,
        discriminator_filters=16,
        latent_dim=32,
        backup_every_steps=4,
        # Over a 16-step run a 0.999 weight average would still be the initial weights; the
        # tests that need the average ask for a short one.
        generator_ema=0.0,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def trained_run_dir(tmp_path_factory):
    """A finished 2-epoch run (small networks, 512 subset images), shared by export/serving/evaluate tests.

    Read-only for its users: copy it before changing anything in it.
    """
    run_dir = tmp_path_factory.mktemp("trained_run")
    train_keeping_policy(small_config(run_dir))
    return run_dir


def train_keeping_policy(config):
    """Train in this process, then restore the dtype policy training set, so later tests see the one they expect."""
    import keras

    from keras_dcgan.training import train

    policy = keras.config.dtype_policy()
    try:
        return train(config, verbose=0)
    finally:
        keras.config.set_dtype_policy(policy)


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
