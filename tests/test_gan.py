"""The DCGAN model's train_step."""

import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan.config import TrainConfig
from keras_dcgan.data import pack_labelled_batch
from keras_dcgan.gan import DCGAN
from keras_dcgan.training import build_model


def _small_model(**overrides):
    return build_model(TrainConfig(
        latent_dim=16, generator_filters=4, discriminator_filters=4, batch_size=16, learning_rate_decay=0.0, **overrides
    ))


def _values(variables):
    return {variable.path: np.array(variable.numpy()) for variable in variables}


def test_one_train_step_changes_both_networks_and_nothing_else():
    model = _small_model()
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32))
    labels = tf.constant(np.arange(16) % 10, tf.int64)
    network_variables = model.generator.variables + model.discriminator.variables
    training_state = (
        model.generator_optimizer.variables
        + model.discriminator_optimizer.variables
        + [variable for metric in model.metrics for variable in metric.variables]
    )
    before = _values(network_variables + training_state)

    logs = model.train_step(pack_labelled_batch(images, labels))

    after = _values(network_variables + training_state)
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    # Every trainable weight of both networks moved, and BatchNorm's moving statistics too, but
    # the real-vs-fake logit's bias: while every logit lies inside the hinge's margin (|logit| < 1,
    # as at initialisation) its gradient is -1 per real image and +1 per fake, which cancel.
    trainable = model.generator.trainable_variables + model.discriminator.trainable_variables
    assert {variable.path for variable in trainable} - changed == {"logit/bias"}
    assert any("moving_mean" in path and path.startswith("generator") for path in changed)
    # Nothing outside the networks, their optimisers and the loss trackers is a variable of the model.
    assert {variable.path for variable in model.variables} <= set(before)
    assert int(model.generator_optimizer.iterations.numpy()) == 1
    assert int(model.discriminator_optimizer.iterations.numpy()) == 1
    # At initialisation D is undecided, its logits near 0: the hinge d_loss is near 2, g_loss near 0.
    assert abs(float(logs["d_loss"][0]) - 2.0) < 0.3
    assert abs(float(logs["g_loss"][0])) < 0.3


def test_noise_is_fresh_every_step_but_reproducible():
    model = _small_model()
    first = model.sample_latent(4).numpy()
    model.generator_optimizer.iterations.assign(1)
    second = model.sample_latent(4).numpy()
    model.generator_optimizer.iterations.assign(0)
    np.testing.assert_array_equal(model.sample_latent(4).numpy(), first)
    assert not np.allclose(first, second)


@pytest.mark.parametrize(
    "overrides, code_losses",
    [
        (dict(), set()),  # projection, the default
        (dict(label_conditioning="classifier"), {"info_loss", "label_loss"}),
        (dict(code_labels=False), {"info_loss"}),  # infogan
        (dict(categorical_code=0), set()),
    ],
)
def test_fit_runs_and_logs_the_losses_and_scores(overrides, code_losses):
    model = _small_model(**overrides)
    images = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)
    examples = pack_labelled_batch(images, np.arange(64) % 10) if model.uses_labels else images
    batches = tf.data.Dataset.from_tensor_slices(examples).batch(16)
    history = model.fit(batches, epochs=1, verbose=0, shuffle=False)
    assert set(history.history) == {"d_loss", "g_loss", "real_score", "fake_score"} | code_losses
    assert all(np.isfinite(np.asarray(values, dtype=float)).all() for values in history.history.values())


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(categorical_code=10, conditioning=None), "conditioning must be one of infogan, classifier, projection"),
        (dict(categorical_code=0, conditioning="projection"), "and None without; got 'projection'"),
        (dict(categorical_code=10, conditioning="auxiliary"), "got 'auxiliary' with categorical_code=10"),
        (dict(gan_loss="wasserstein"), "gan_loss must be one of hinge, non-saturating; got 'wasserstein'"),
    ],
)
def test_the_model_refuses_a_conditioning_or_loss_it_does_not_have(arguments, message):
    with pytest.raises(ValueError, match=message):
        DCGAN(None, None, latent_dim=16, **arguments)


def _bce(target, logits):
    return float(np.mean(np.logaddexp(0, logits) - target * logits))


def _non_saturating_losses(real_logits, fake_logits):
    return _bce(1, real_logits) + _bce(0, fake_logits), _bce(1, fake_logits)


def _hinge_losses(real_logits, fake_logits):
    hinge = float(np.mean(np.maximum(0, 1 - real_logits)) + np.mean(np.maximum(0, 1 + fake_logits)))
    return hinge, -float(np.mean(fake_logits))


@pytest.mark.parametrize("gan_loss, losses", [("non-saturating", _non_saturating_losses), ("hinge", _hinge_losses)])
def test_the_projection_discriminator_judges_each_image_with_its_label(gan_loss, losses):
    """Both losses of one step, from logit(x) + code_logits(x)[label] and logit(G(z)) + code_logits(G(z))[code]; no code loss."""
    model = _small_model(precision="float32", gan_loss=gan_loss)  # projection is the default
    # Code logits of order 1 instead of the initial ~0.01, so that the projection moves the loss
    # far more than the tolerance of the check below.
    code_kernel = model.discriminator.get_layer("code_logits").kernel
    code_kernel.assign(code_kernel * 100)
    images = tf.constant(np.random.default_rng(2).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32))
    labels = np.arange(16) % 10
    latent = model.sample_latent(16)  # what the step will draw: its noise depends on the step only
    codes = np.argmax(latent.numpy()[:, :10], axis=1)
    # The networks in training mode (BatchNorm on the batch's statistics), before the step moves them.
    real_logits, real_code_logits = (output.numpy() for output in model.discriminator(images, training=True))
    fakes = model.generator(latent, training=True)
    fake_logits, fake_code_logits = (output.numpy() for output in model.discriminator(fakes, training=True))

    rows = np.arange(16)
    projected_real = real_logits[:, 0] + real_code_logits[rows, labels]
    projected_fake = fake_logits[:, 0] + fake_code_logits[rows, codes]
    logs = model.train_step(pack_labelled_batch(images, tf.constant(labels, tf.int64)))

    assert set(logs) == {"d_loss", "g_loss", "real_score", "fake_score"}
    d_loss, g_loss = losses(projected_real, projected_fake)
    np.testing.assert_allclose(float(logs["d_loss"][0]), d_loss, rtol=1e-4)
    np.testing.assert_allclose(float(logs["g_loss"][0]), g_loss, rtol=1e-4, atol=1e-6)
    # The labels matter: the same images judged without them would have given another loss.
    unprojected_d_loss, _ = losses(real_logits[:, 0], fake_logits[:, 0])
    assert abs(float(logs["d_loss"][0]) - unprojected_d_loss) > 0.5
