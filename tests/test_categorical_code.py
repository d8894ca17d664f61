"""The InfoGAN categorical code: read from the latent, fed to the generator, recovered by the discriminator."""

import keras
import numpy as np
import tensorflow as tf

from helpers import networks_under_policy
from keras_dcgan.categorical_code import CategoricalCode, code_indices
from keras_dcgan.config import TrainConfig
from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.networks import build_discriminator, build_generator
from keras_dcgan.training import build_model


def test_seeded_latents_give_every_category_equally_often():
    """The code needs no input of its own: the argmax of N(0, 1) values is uniform."""
    indices = np.asarray(code_indices(latents_from_seeds(range(50_000), 100), 10))
    shares = np.bincount(indices, minlength=10) / len(indices)
    assert np.abs(shares - 0.1).max() < 0.006  # 4.5 standard errors


def test_layer_puts_the_one_hot_code_before_the_latent():
    latent = np.array([[0.1, 2.0, -1.0, 9.0], [3.0, 0.5, 0.2, -9.0]], np.float32)
    output = CategoricalCode(3)(latent).numpy()
    np.testing.assert_array_equal(output[:, :3], [[0, 1, 0], [1, 0, 0]])  # latent[:, 3] is not part of the code
    np.testing.assert_array_equal(output[:, 3:], latent)


def test_code_stays_float32_under_mixed_precision():
    """In bfloat16, 1.0 and 1.001 are the same number: the code would take the wrong category."""
    generator, _ = networks_under_policy(TrainConfig(latent_dim=16, generator_filters=4, categorical_code=4))
    layer = generator.get_layer("categorical_code")
    latent = np.zeros((1, 16), np.float32)
    latent[0, :2] = [1.0, 1.001]
    assert layer.compute_dtype == "float32"
    np.testing.assert_array_equal(layer(latent).numpy()[0, :4], [0, 1, 0, 0])


def test_generator_reads_the_code_and_the_whole_latent():
    generator = build_generator(TrainConfig(latent_dim=16, generator_filters=4))
    assert generator.input_shape == (None, 16)  # the contract: a plain latent, no separate code input
    assert generator.get_layer("categorical_code").output.shape == (None, 10 + 16)
    assert generator.get_layer("project").kernel.shape == (10 + 16, 7 * 7 * 8)
    assert "categorical_code" not in [layer.name for layer in build_generator(TrainConfig(categorical_code=0)).layers]


def test_discriminator_has_a_code_head_and_without_a_code_is_the_papers():
    images = np.zeros((3, 28, 28, 1), np.float32)
    logits, code_logits = build_discriminator(TrainConfig(discriminator_filters=8))(images)
    assert logits.shape == (3, 1) and code_logits.shape == (3, 10)
    without = build_discriminator(TrainConfig(discriminator_filters=8, categorical_code=0))
    assert isinstance(without, keras.Sequential) and without(images).shape == (3, 1)
    assert not any(layer.name.startswith("code") for layer in without.layers)


def test_training_teaches_the_discriminator_to_name_the_code():
    """info_loss starts at ln(k), a guess, and falls once both networks learn to carry the code."""
    config = TrainConfig(
        latent_dim=16, generator_filters=8, discriminator_filters=8, batch_size=32, categorical_code=4, code_labels=False,
        learning_rate_decay=0.0,
    )
    model = build_model(config)
    images = np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensors(images).repeat()
    history = model.fit(dataset, steps_per_epoch=30, epochs=6, verbose=0, shuffle=False)
    losses = history.history["info_loss"]
    assert abs(losses[0] - np.log(4)) < 0.15
    assert losses[-1] < 0.5 * np.log(4)  # measured: 1.37, 1.31, 1.16, 0.88, 0.54, 0.31
