"""Shared fixtures: where MNIST is, one trained run and one export of it reused by many tests (helpers are in helpers.py).

- `mnist_subset_dir`: 3,000 + 1,000 real MNIST images committed under tests/data (always there).
- `full_mnist_dir`: the full IDX files, from $KERAS_DCGAN_MNIST_DIR or ../shared/data/mnist
  next to the checkout; tests that need them are skipped, saying why, where they are absent.
"""

import os
import pathlib
from dataclasses import dataclass

import pytest

from helpers import DIGIT_SAMPLES, SUBSET_DIR, evaluated_run, find_full_mnist, small_run


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
def subset_classifier(classifier_cache_dir):
    """The evaluation classifier of the committed subset, trained once (6 epochs: ~97 %) into `classifier_cache_dir`.

    Training it takes half a minute on two busy cores; every test that scores samples of the
    subset (exports of a run that takes digits included) asks for this fixture, so that the
    first of them trains it with these epochs and the others find it cached.
    """
    from keras_dcgan.evaluation.classifier import load_or_train_classifier
    from keras_dcgan.data import load_splits

    return load_or_train_classifier(*load_splits("mnist", str(SUBSET_DIR)), classifier_cache_dir, epochs=6, log=lambda _: None)


@pytest.fixture(scope="session")
def trained_run_dir(tmp_path_factory):
    """A finished 2-epoch run (small networks, 512 subset images), shared by export/serving/evaluate tests.

    Read-only for its users: copy it before changing anything in it.
    """
    from keras_dcgan.training import train

    run_dir = tmp_path_factory.mktemp("trained_run")
    train(*small_run(run_dir), verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def evaluated_run_dir(tmp_path_factory, subset_classifier, classifier_cache_dir):
    """A finished 3-epoch `evaluated_run`: a weight average saved, quality scored after epochs 2 and 3. Read-only."""
    from keras_dcgan.training import train

    run_dir = tmp_path_factory.mktemp("evaluated_run")
    train(*evaluated_run(run_dir, 3, classifier_cache_dir), verbose=0)
    return run_dir


@dataclass
class ExportedModel:
    export_root: pathlib.Path
    version_dir: pathlib.Path
    onnx_path: pathlib.Path
    manifest_path: pathlib.Path
    manifest: dict
    version: int


@pytest.fixture(scope="session")
def exported_model(trained_run_dir, subset_classifier, tmp_path_factory):
    """`trained_run_dir` exported once by the real `export_generator` as dcgan version 1 (SavedModel + ONNX + manifest).

    Read-only for its users, as `trained_run_dir` is: copy the version folder before changing it.
    """
    from keras_dcgan.export import export_generator

    export_root = tmp_path_factory.mktemp("exports")
    result = export_generator(trained_run_dir, export_root, version=1, data_dir=SUBSET_DIR, digit_samples=DIGIT_SAMPLES)
    return ExportedModel(
        export_root, pathlib.Path(result.version_dir), pathlib.Path(result.onnx_path), pathlib.Path(result.manifest_path),
        result.manifest, result.version,
    )
