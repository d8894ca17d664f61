"""The evaluation metrics on real data, on broken "generators", and end to end on a run and its ONNX export.

The classifier is trained once per session on the committed MNIST subset (3,000 train
images, a few seconds) and cached in a session temp dir that the CLI test reuses.
"""

import json

import numpy as np
import pytest

from keras_dcgan.evaluation import metrics
from keras_dcgan.evaluation.classifier import load_or_train_classifier, to_unit_range
from keras_dcgan.evaluation.command import load_splits
from keras_dcgan.evaluation.report import Evaluator
from tests.conftest import run_cli

SAMPLES = 1000


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("classifier_cache")


@pytest.fixture(scope="session")
def evaluator(mnist_subset_dir, classifier_cache):
    train, test = load_splits("mnist", str(mnist_subset_dir))
    classifier = load_or_train_classifier(train, test, str(classifier_cache), epochs=6, log=lambda message: None)
    return Evaluator(train, test, classifier)


@pytest.fixture(scope="session")
def real_images(evaluator):
    return to_unit_range(evaluator.train.images[:SAMPLES])


@pytest.fixture(scope="session")
def real_scores(evaluator):
    return evaluator.real_reference(SAMPLES)


def test_frechet_distance_of_known_gaussians():
    identity = (np.zeros(3), np.eye(3))
    assert metrics.frechet_distance(identity, identity) == pytest.approx(0.0, abs=1e-9)
    # N(m, I) vs N(0, 4I): |m|^2 + 3 * (1 + 4 - 2 * 2)
    shifted = (np.array([1.0, 2.0, 2.0]), np.eye(3))
    assert metrics.frechet_distance(shifted, (np.zeros(3), 4 * np.eye(3))) == pytest.approx(9.0 + 3.0)


def test_class_kl_and_score_extremes():
    assert metrics.kl_from_uniform(np.full(10, 0.1)) == pytest.approx(0.0)
    assert metrics.kl_from_uniform(np.eye(10)[3]) == pytest.approx(np.log(10))
    confident_and_even = np.eye(10)[np.arange(1000) % 10]
    assert metrics.classifier_score(confident_and_even) == pytest.approx(10.0, rel=1e-6)


def test_classifier_learned_the_subset(evaluator):
    # 3,000 training images give ~95 %; the full train split gives >= 99 % (see README).
    assert evaluator.classifier.test_accuracy > 0.9


def test_real_against_real_is_near_the_floor(real_scores):
    assert real_scores.fcd < 5.0
    assert real_scores.classifier_score > 8.0
    assert real_scores.class_kl < 0.05
    assert all(0.05 < share < 0.16 for share in real_scores.class_shares)
    assert 0.8 < real_scores.checkerboard < 1.25


def test_one_digit_shape_is_flagged_by_class_kl(evaluator, real_images, real_scores):
    one_digit = np.repeat(real_images[:1], SAMPLES, axis=0)
    scores = evaluator.evaluate(one_digit)
    assert scores.class_kl > 2.0  # log(10) = 2.30 when every sample is one class
    assert max(scores.class_shares) > 0.95
    assert scores.classifier_score < 1.5
    assert scores.fcd > 10 * real_scores.fcd


def test_shuffled_pixels_score_badly(evaluator, real_images, real_scores):
    generator = np.random.default_rng(0)
    flat = real_images.reshape(SAMPLES, -1)
    shuffled = np.stack([row[generator.permutation(row.size)] for row in flat]).reshape(real_images.shape)
    scores = evaluator.evaluate(shuffled)
    assert scores.fcd > 20 * real_scores.fcd
    assert scores.classifier_score < real_scores.classifier_score / 2


def test_period2_pattern_raises_the_checkerboard_measure(evaluator, real_images, real_scores):
    rows, columns = np.indices((28, 28))
    pattern = np.where((rows + columns) % 2 == 0, 1.0, -1.0)[np.newaxis, :, :, np.newaxis]
    # Content-modulated, as transposed-convolution artifacts are: only where there is ink.
    checkered = np.clip(real_images * (1.0 + 0.3 * pattern), 0.0, 1.0)
    scores = evaluator.evaluate(checkered)
    assert scores.checkerboard > 2.0 * real_scores.checkerboard


@pytest.mark.slow
def test_evaluate_command_on_a_run(trained_run_dir, classifier_cache, evaluator, tmp_path):
    output = tmp_path / "scores.json"
    completed = run_cli(
        "evaluate", trained_run_dir, "--samples", 300, "--cache-dir", classifier_cache, "--json", output, check=True
    )
    assert "real (train vs test)" in completed.stdout and "FCD" in completed.stdout
    scores = json.loads(output.read_text())
    assert scores["classifier"]["key"] == evaluator.classifier.key  # the cached classifier was reused
    assert scores["generated"]["samples"] == 300
    assert scores["generated"]["fcd"] > scores["real_train_vs_test"]["fcd"]


def test_evaluate_refuses_what_is_not_a_generator(tmp_path):
    completed = run_cli("evaluate", tmp_path)
    assert completed.returncode == 2
    assert "not a run dir" in completed.stderr
