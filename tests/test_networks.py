"""Network shapes, parameter counts, and BatchNorm's training vs inference behaviour."""

import numpy as np
import pytest

from keras_dcgan.config import TrainConfig
from keras_dcgan.networks import build_discriminator, build_generator


@pytest.mark.parametrize("upsampling", ["transpose", "resize-conv"])
def test_generator_maps_latents_to_tanh_images(upsampling):
    config = TrainConfig(latent_dim=16, generator_filters=8, upsampling=upsampling)
    generator = build_generator(config)
    latent = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    images = generator(latent, training=False).numpy()
    assert images.shape == (5, 28, 28, 1)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert generator.input_shape == (None, 16)


def test_discriminator_gives_one_logit_per_image():
    discriminator = build_discriminator(TrainConfig(discriminator_filters=8))
    logits, _ = discriminator(np.zeros((3, 28, 28, 1), np.float32), training=False)  # and the code's: test_categorical_code
    assert logits.shape == (3, 1)


def test_refine_convolutions_keep_14x14_and_zero_gives_the_papers_generator():
    paper = build_generator(TrainConfig(generator_refine_convs=0))
    refined = build_generator(TrainConfig(generator_refine_convs=2))
    assert not any(layer.name.startswith("refine") for layer in paper.layers)
    assert refined.get_layer("refine_14x14_2").output.shape == (None, 14, 14, TrainConfig().generator_filters)
    # Each adds a 3x3 convolution without bias plus BatchNorm's four vectors.
    filters = TrainConfig().generator_filters
    assert refined.count_params() - paper.count_params() == 2 * (9 * filters * filters + 4 * filters)


def test_discriminator_refine_convolution_keeps_14x14_and_leaky_relu():
    config = TrainConfig(discriminator_refine_convs=1, leaky_relu_slope=0.3)
    discriminator = build_discriminator(config)
    assert discriminator.get_layer("refine_14x14_1").output.shape == (None, 14, 14, config.discriminator_filters)
    assert discriminator.get_layer("refine_14x14_1_lrelu").negative_slope == 0.3
    paper = build_discriminator(TrainConfig(discriminator_refine_convs=0))
    assert not any(layer.name.startswith("refine") for layer in paper.layers)
    filters = config.discriminator_filters
    assert discriminator.count_params() - paper.count_params() == 9 * filters * filters + 4 * filters
    with pytest.raises(ValueError, match="discriminator_refine_convs must be 0 or more"):
        TrainConfig(discriminator_refine_convs=-1)


def test_output_convolution_works_at_28x28_on_half_the_channels():
    config = TrainConfig(generator_filters=32)
    generator = build_generator(config)
    assert generator.get_layer("up_28x28").output.shape == (None, 28, 28, 16)
    assert generator.get_layer("to_image").kernel.shape == (3, 3, 16, 1)
    with pytest.raises(ValueError, match="generator_filters must be at least 2"):
        TrainConfig(generator_filters=1)


def test_paper_guidelines_in_the_layers():
    config = TrainConfig(leaky_relu_slope=0.3)
    generator, discriminator = build_generator(config), build_discriminator(config)
    kinds = lambda model: [type(layer).__name__ for layer in model.layers if type(layer).__name__ != "InputLayer"]  # noqa: E731
    # No BatchNorm on the generator's output nor on the discriminator's input layer.
    assert kinds(generator)[-1] == "Conv2D" and generator.layers[-1].activation.__name__ == "tanh"
    paper = build_generator(TrainConfig(generator_output_conv=False, upsampling="transpose"))
    assert kinds(paper)[-1] == "Conv2DTranspose" and paper.layers[-1].activation.__name__ == "tanh"
    assert kinds(discriminator)[:2] == ["Conv2D", "LeakyReLU"]
    assert kinds(generator)[:2] == ["CategoricalCode", "Dense"]
    assert all(layer.negative_slope == 0.3 for layer in discriminator.layers if type(layer).__name__ == "LeakyReLU")
    kernel = generator.get_layer("project").get_weights()[0]
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002  # N(0, 0.02)


def test_batch_norm_uses_batch_statistics_only_in_training():
    generator = build_generator(TrainConfig(latent_dim=16, generator_filters=4))
    rng = np.random.default_rng(1)
    first = rng.standard_normal((1, 16)).astype(np.float32)
    companions_a = rng.standard_normal((7, 16)).astype(np.float32)
    companions_b = 3.0 * rng.standard_normal((7, 16)).astype(np.float32)
    batch_a = np.concatenate([first, companions_a])
    batch_b = np.concatenate([first, companions_b])
    # Inference: the first image does not depend on the rest of its batch.
    np.testing.assert_allclose(
        generator(batch_a, training=False)[0], generator(batch_b, training=False)[0], atol=1e-6
    )
    # Training: batch statistics, so it does.
    difference = np.abs(generator(batch_a, training=True)[0] - generator(batch_b, training=True)[0]).max()
    assert difference > 1e-3
