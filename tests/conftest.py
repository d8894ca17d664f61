"""Shared fixtures: where MNIST is, and one trained run reused by many tests (helpers are in helpers.py).

- `mnist_subset_dir`: 3,000 + 1,000 real MNIST images committed under tests/data (always there).
- `full_mnist_dir`: the full IDX files, from $KERAS_DCGAN_MNIST_DIR or ../shared/data/mnist
  next to the checkout; tests that need them are skipped, saying why, where they are absent.
"""

import os

import pytest

from helpers import SUBSET_DIR, find_full_mnist, small_run, train_keeping_policy


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


@pytest.fixture(scope="session")
def trained_run_dir(tmp_path_factory):
    """A finished 2-epoch run (small networks, 512 subset images), shared by export/serving/evaluate tests.

    Read-only for its users: copy it before changing anything in it.
    """
    run_dir = tmp_path_factory.mktemp("trained_run")
    train_keeping_policy(*small_run(run_dir))
    return run_dir
