"""A float32 generator for sampling, from a training model or from an epoch checkpoint.

Training may run under `mixed_bfloat16` and may keep a moving average of the generator's
weights in its Adam optimiser (`--generator-ema`). Everything that samples from a trained
generator (generator.keras at the end of `fit`, `export`, `evaluate`) wants the same thing:
float32 layers, the averaged weights where there is an average, and BatchNorm statistics that
belong to those weights. This module is that one recipe.
"""

import numpy as np


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
        # Keras keeps the averages in this (private) list, in the order of the trainable
        # variables it was built on; finalize_variable_values would assign them through the
        # strategy, which a plain copy cannot take.
        averages = generator_optimizer._model_variables_moving_average
        for variable, average in zip(copy.trainable_variables, averages, strict=True):
            variable.assign(np.asarray(average, dtype=np.float32))
        recalibrate_batch_norm(copy, config.latent_dim)
    return copy


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
    """Load the generator of an epoch checkpoint into `generator`, with its moving average if the run keeps one.

    Every variable of the generator must be found in the checkpoint (the discriminator and
    the rest of the file are not wanted); otherwise a ValueError says the file does not fit.
    """
    import keras
    import tensorflow as tf

    objects = {"generator": generator}
    optimizer = None
    if config.generator_ema:  # the average lives in the generator's optimiser
        optimizer = keras.optimizers.Adam(use_ema=True, ema_momentum=config.generator_ema)
        optimizer.build(generator.trainable_variables)
        objects["generator_optimizer"] = optimizer
    try:
        status = tf.train.Checkpoint(**objects).read(path)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except Exception as error:  # a damaged file surfaces as OpError, IndexError, AssertionError, ValueError...
        raise ValueError(
            f"checkpoint {path} cannot be restored into the generator of this run's config "
            f"({type(error).__name__}: {str(error).strip()[:500]}); is it corrupt?"
        ) from error
    if optimizer is not None:
        optimizer.finalize_variable_values(generator.trainable_variables)
        recalibrate_batch_norm(generator, config.latent_dim)
