"""The evaluation metrics on real data, on broken "generators", and end to end on a run and its ONNX export.

The classifier is trained once per test run on the committed MNIST subset (3,000 train
images; conftest.py: `subset_classifier`) and cached in a temp dir that the CLI test reuses.
"""

import json
import shutil

import numpy as np
import pytest

from helpers import SUBSET_DIR, evaluated_run, run_cli
from keras_dcgan.evaluation import metrics
from keras_dcgan.evaluation.classifier import to_unit_range
from keras_dcgan.data import load_splits
from keras_dcgan.evaluation.report import Evaluator

SAMPLES = 1000


@pytest.fixture(scope="session")
def evaluator(mnist_subset_dir, subset_classifier):
    return Evaluator(*load_splits("mnist", str(mnist_subset_dir)), subset_classifier)


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


def test_unsure_share_counts_samples_below_the_confidence():
    probabilities = np.array([[0.95, 0.05], [0.6, 0.4], [0.5, 0.5], [0.0, 1.0]])
    assert metrics.unsure_share(probabilities) == pytest.approx(0.5)
    assert metrics.unsure_share(probabilities, confidence=0.55) == pytest.approx(0.25)


def test_classifier_learned_the_subset(evaluator):
    # 3,000 training images give ~95 %; the full train split gives >= 99 % (docs/quality-and-speed.md).
    assert evaluator.classifier.test_accuracy > 0.9


def test_real_against_real_is_near_the_floor(real_scores):
    assert real_scores.fcd < 5.0
    assert real_scores.classifier_score > 8.0
    assert real_scores.class_kl < 0.05
    assert all(0.05 < share < 0.16 for share in real_scores.class_shares)
    assert 0.8 < real_scores.checkerboard < 1.25
    assert real_scores.unsure_share < 0.15  # the subset's classifier is ~95 % accurate


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
    assert scores.unsure_share > 2 * real_scores.unsure_share


def test_period2_pattern_raises_the_checkerboard_measure(evaluator, real_images, real_scores):
    rows, columns = np.indices((28, 28))
    pattern = np.where((rows + columns) % 2 == 0, 1.0, -1.0)[np.newaxis, :, :, np.newaxis]
    # Content-modulated, as transposed-convolution artifacts are: only where there is ink.
    checkered = np.clip(real_images * (1.0 + 0.3 * pattern), 0.0, 1.0)
    scores = evaluator.evaluate(checkered)
    assert scores.checkerboard > 2.0 * real_scores.checkerboard


@pytest.mark.slow
def test_evaluate_command_on_a_run(trained_run_dir, classifier_cache_dir, evaluator, tmp_path):
    output = tmp_path / "scores.json"
    output.write_text("an earlier result, given up with --force")
    completed = run_cli(
        "evaluate", trained_run_dir, "--data-dir", SUBSET_DIR, "--samples", 300, "--cache-dir", classifier_cache_dir,
        "--json", output, "--force", check=True,
    )
    assert "real (train vs test)" in completed.stdout and "FCD" in completed.stdout
    scores = json.loads(output.read_text())
    assert scores["classifier"]["key"] == evaluator.classifier.key  # the cached classifier was reused
    assert scores["generated"]["samples"] == 300
    assert scores["generated"]["fcd"] > scores["real_train_vs_test"]["fcd"]
    # The run's code learnt the labels, so it takes digits: each is asked for 30 times.
    assert "asked digits named as asked" in completed.stdout
    asked = scores["asked_digits"]
    assert asked["samples"] == 300 and len(asked["per_digit"]) == 10


def test_evaluate_refuses_what_is_not_a_generator(tmp_path, capsys):
    from keras_dcgan.cli import main

    assert main(["evaluate", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "not a run dir" in error and error.count("\n") == 1


@pytest.mark.slow
def test_evaluate_agrees_on_a_run_its_onnx_and_litert_files_and_its_saved_model(trained_run_dir, exported_model, classifier_cache_dir):
    from keras_dcgan.evaluation.command import evaluate_source

    sources = {
        "run": trained_run_dir, "generator.onnx": exported_model.onnx_path,
        "generator.tflite": exported_model.version_dir / "generator.tflite", "saved_model": exported_model.version_dir,
    }
    results = {
        name: evaluate_source(source, samples=300, data_dir=SUBSET_DIR, cache_dir=classifier_cache_dir, log=lambda message: None)
        for name, source in sources.items()
    }
    run_scores = results["run"][0]
    for name in ("generator.onnx", "generator.tflite", "saved_model"):
        scores, real, *_ = results[name]
        assert scores.fcd == pytest.approx(run_scores.fcd, rel=1e-3)
        assert scores.classifier_score == pytest.approx(run_scores.classifier_score, rel=1e-3)
        assert scores.checkerboard == pytest.approx(run_scores.checkerboard, rel=1e-3)
        assert scores.class_shares == pytest.approx(run_scores.class_shares, abs=2 / 300)
        assert real == results["run"][1]


@pytest.mark.slow
def test_fit_evaluates_every_n_epochs_and_resumes_the_record(evaluated_run_dir, classifier_cache_dir, evaluator, tmp_path):
    from keras_dcgan.evaluation.command import evaluate_source
    from keras_dcgan.training import train

    content = json.loads((evaluated_run_dir / "metrics.json").read_text())
    epochs = content["epochs"]
    assert [record["epoch"] for record in epochs] == [1, 2, 3]
    assert ["fcd" in record for record in epochs] == [False, True, True]  # every 2nd epoch and the last
    assert all("raw_fcd" in record and "d_loss" in record for record in epochs[1:])
    assert all(record["asked_digits"]["samples"] == 200 for record in epochs[1:])  # the code learns the labels
    assert content["classifier"]["key"] == evaluator.classifier.key
    assert content["real_train_vs_test"]["fcd"] < epochs[-1]["fcd"]
    assert (evaluated_run_dir / "metrics.png").stat().st_size > 10_000
    assert list((evaluated_run_dir / "logs" / "quality").iterdir())

    run_dir = tmp_path / "run"
    shutil.copytree(evaluated_run_dir, run_dir)
    train(*evaluated_run(run_dir, 4, classifier_cache_dir), verbose=0)  # resume for one more epoch
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    assert [record["epoch"] for record in epochs] == [1, 2, 3, 4]
    assert epochs[3]["train_seconds"] > epochs[2]["train_seconds"] and "fcd" in epochs[3]

    # The final generator.keras holds the weight average, as the last evaluation scored it.
    final = evaluate_source(run_dir, samples=200, data_dir=SUBSET_DIR, cache_dir=classifier_cache_dir, log=lambda message: None)[0]
    assert final.fcd == pytest.approx(epochs[3]["fcd"], rel=1e-3)
    at_epoch = evaluate_source(run_dir, epoch=4, samples=200, data_dir=SUBSET_DIR, cache_dir=classifier_cache_dir, log=lambda message: None)[0]
    assert at_epoch.fcd == pytest.approx(epochs[3]["fcd"], rel=1e-3)


def test_mixed_precision_networks_keep_outputs_and_logits_float32():
    from keras_dcgan.config import TrainConfig
    from helpers import networks_under_policy

    config = TrainConfig(generator_filters=8, discriminator_filters=8, latent_dim=4, categorical_code=0)
    generator, discriminator = networks_under_policy(config)
    images = generator(np.zeros((2, 4), np.float32))
    assert generator.get_layer("up_14x14").compute_dtype == "bfloat16"  # the costly middle runs in bfloat16
    assert images.dtype == "float32" and discriminator(images).dtype == "float32"
    assert all(variable.dtype == "float32" for variable in generator.weights + discriminator.weights)


def _gif_timeline(path):
    """[(start ms, duration ms, uint8 pixels)] of every frame the GIF shows, in order."""
    from PIL import Image

    gif, timeline, start = Image.open(path), [], 0
    for index in range(gif.n_frames):
        gif.seek(index)
        timeline.append((start, gif.info["duration"], np.asarray(gif.convert("L"))))
        start += gif.info["duration"]
    return timeline, gif.info.get("loop")


def test_latent_walk_shows_every_seed_on_time_and_loops(trained_run_dir, tmp_path):
    from PIL import Image

    from keras_dcgan import image_grid
    from keras_dcgan.cli import main
    from keras_dcgan.evaluation.generators import open_generator
    from keras_dcgan.latent_walk import walk_latents
    from keras_dcgan.latents import latents_from_seeds

    seeds, steps, frame_ms = [5, 9, 2], 4, 80
    latents = walk_latents(seeds, 32, steps_per_segment=steps)
    assert latents.shape == (12, 32)
    np.testing.assert_allclose(latents[[0, 4, 8]], latents_from_seeds(seeds, 32), atol=1e-6)
    # The last segment heads back to the first seed: one more step would reach it.
    assert np.linalg.norm(latents[-1] - latents[0]) < np.linalg.norm(latents[-2] - latents[0])

    assert main(["latent-walk", str(trained_run_dir), "--seeds", "5,9,2", "--steps", "4", "--output", str(tmp_path / "walk.gif")]) == 0
    # The GIF encoder may merge equal neighbouring frames (adding their durations), so check what
    # a viewer sees at each moment, not the number of frames.
    timeline, loop = _gif_timeline(tmp_path / "walk.gif")
    assert loop == 0  # loops forever
    assert timeline[-1][0] + timeline[-1][1] == 11 * frame_ms + 5 * frame_ms  # the last frame is held 5 times longer
    anchors = image_grid.to_uint8(open_generator(trained_run_dir).generate(latents_from_seeds(seeds, 32)), value_range=(0.0, 1.0))
    for index, anchor in enumerate(anchors):
        shown = next(pixels for start, duration, pixels in timeline if start <= index * steps * frame_ms < start + duration)
        np.testing.assert_array_equal(shown, anchor[..., 0].repeat(4, axis=0).repeat(4, axis=1))
    strip = np.asarray(Image.open(tmp_path / "walk.png"))
    assert strip.shape == (3 * 30 + 2, 4 * 30 + 2)  # 3 segments of 4 frames, 2-pixel gaps
    np.testing.assert_array_equal(strip[2:30, 2:30], anchors[0, ..., 0])


def test_latent_walk_is_bounded_before_any_work(tmp_path, capsys):
    from keras_dcgan.cli import main

    assert main(["latent-walk", str(tmp_path / "no-run"), "--steps", "100000", "--output", str(tmp_path / "walk.gif")]) == 2
    error = capsys.readouterr().err
    assert "4 seeds x --steps 100000 = 400000 frames; a walk has at most 1000" in error and error.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
