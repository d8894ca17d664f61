"""A float32 generator for sampling, from a training model or from an epoch checkpoint.

Training may run under `mixed_bfloat16` and may keep a moving average of the generator's
weights in its Adam optimiser (`--generator-ema`). Everything that samples from a trained
generator (generator.keras at the end of `fit`, `export`, `evaluate`) wants the same thing:
float32 layers, the averaged weights where there is an average, and BatchNorm statistics that
belong to those weights. This module is that one recipe.
"""

import numpy as np

from keras_dcgan.image_range import to_unit_range

# The average starts from the initial weights, which keep a share momentum**steps of it: at most
# e**-FIRST_WEIGHTS_LOG_SHARE (less than a hundredth) at the end of a run, however short, so that
# a short run's average is one of trained weights.
FIRST_WEIGHTS_LOG_SHARE = 5


def weight_average_momentum(momentum, total_steps):
    """`momentum` (`generator_ema`), lowered for a run of `total_steps` too short for it (None: the run's length is unknown)."""
    if not momentum or not total_steps:
        return momentum
    return max(0.0, min(momentum, 1 - FIRST_WEIGHTS_LOG_SHARE / total_steps))


def float32_generator(config):
    """build_generator follows Keras' global dtype policy: build in float32 whatever it is.

    Built with Keras' own BatchNormalization: generator.keras and the exports hold no training-only layer.
    """
    import keras

    from keras_dcgan.networks import build_generator

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return build_generator(config, fused_batch_norm=False)
    finally:
        keras.config.set_dtype_policy(previous)


def inference_generator(config, generator, generator_optimizer=None):
    """A float32 copy of a training generator (weights and BatchNorm statistics) for sampling.

    If the optimiser keeps a moving average of the weights (`generator_ema`), the copy holds
    that average, as generator.keras does at the end of training.

    The copy is a plain local model whatever the training strategy: values are read out as
    numpy, never assigned through the strategy, so building it runs no collective op and one
    worker alone may do it (the chief's scoring during multi-worker training).
    """
    copy = float32_generator(config)
    copy.set_weights([np.asarray(weights, dtype=np.float32) for weights in generator.get_weights()])
    if generator_optimizer is not None and generator_optimizer.use_ema:
        # Read out, not finalize_variable_values: that would assign through the strategy, which a plain copy cannot take.
        for variable, average in zip(copy.trainable_variables, weight_averages(generator_optimizer), strict=True):
            variable.assign(np.asarray(average, dtype=np.float32))
        recalibrate_batch_norm(copy, config.latent_dim)
    return copy


def unit_range_images(generator, latents, batch_size=500):
    """float32 images in [0, 1] of `generator` in inference mode, `batch_size` latents at a time."""
    return np.concatenate([
        to_unit_range(np.asarray(generator(latents[start : start + batch_size], training=False)))
        for start in range(0, len(latents), batch_size)
    ])


def weight_averages(optimizer):
    """The moving averages an optimiser built with `use_ema=True` keeps, in the order of the variables it was built on.

    Keras has no public accessor for them (only `finalize_variable_values`, which overwrites the
    variables), so this is the one place that reads its private list; tests/test_inference_generator.py
    fails when a Keras release renames or reorders it, and pyproject.toml pins the Keras versions it checked.
    """
    return list(optimizer._model_variables_moving_average)


def recalibrate_batch_norm(generator, latent_dim, batches=50, batch_size=256, seed=0):
    """Re-estimate BatchNorm moving statistics for the generator's current weights.

    The statistics saved with the weights were gathered by the last weights, not by their
    average; running the averaged generator in training mode on fresh latents (its BatchNorm
    momentum is 0.9: 50 batches leave 0.5 % of the old values) makes them its own.
    """
    generator_rng = np.random.default_rng(seed)
    for _ in range(batches):
        generator(generator_rng.standard_normal((batch_size, latent_dim)).astype(np.float32), training=True)


def read_epoch_checkpoint(generator, config, path):
    """Load the generator of an epoch checkpoint into `generator`; returns the step it was saved at.

    With `generator_ema` the generator gets the weight average kept by its optimiser, with
    BatchNorm statistics re-estimated for it. Every variable of the generator and its optimiser
    must be found in the checkpoint (the discriminator and the rest of the file are not wanted);
    otherwise a ValueError says the file does not fit.
    """
    import keras
    import tensorflow as tf

    from keras_dcgan.learning_rate import learning_rate

    # The generator's optimiser as training built it: it holds the step counter and, with
    # generator_ema, the weight average (checkpoints.py names both objects the same way).
    averaging = {"use_ema": True, "ema_momentum": config.generator_ema} if config.generator_ema else {}
    # A constant rate is a variable in the checkpoint, a schedule is not: only the kind of rate
    # must match training's, so any run length will do.
    rate = learning_rate(config.generator_lr, config.learning_rate_decay, total_steps=1)
    optimizer = keras.optimizers.Adam(rate, **averaging)
    optimizer.build(generator.trainable_variables)
    try:
        status = tf.train.Checkpoint(generator=generator, generator_optimizer=optimizer).read(path)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except Exception as error:  # a damaged file surfaces as OpError, IndexError, AssertionError, ValueError...
        raise ValueError(
            f"checkpoint {path} cannot be restored into the generator of this run's config "
            f"({type(error).__name__}: {str(error).strip()[:500]}); is it corrupt?"
        ) from error
    if config.generator_ema:
        optimizer.finalize_variable_values(generator.trainable_variables)
        recalibrate_batch_norm(generator, config.latent_dim)
    return int(optimizer.iterations.numpy())
