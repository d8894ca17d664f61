"""TensorFlow ports of `keras_dcgan.latents.latents_from_seeds` and `keras_dcgan.digits.latents_for_digits`,
for the `generate_from_seeds` and `generate_digits` signatures.

The same int64 bitwise operations and multiplications as the numpy version (every product
of a 32-bit value and a constant below 2**31 fits in int64), and float64 for log, cos and
sqrt, so seed 7 gives the same latent in TF Serving as in numpy (tests check bit-for-bit
or within 1e-7). Only core ops (bitwise, Mul, Log, Cos, Sqrt, Assert): TF-Serving-safe.
"""

import numpy as np
import tensorflow as tf

from keras_dcgan.latents import MASK_32, MAX_SEED, MIX_1, MIX_2, SEED_OFFSET


def hash32(values):
    """tf.int64 values holding 32-bit unsigned integers -> the same, mixed as `latents.hash32`."""
    values = tf.bitwise.bitwise_and(values, MASK_32)
    values = tf.bitwise.bitwise_xor(values, tf.bitwise.right_shift(values, 16))
    values = tf.bitwise.bitwise_and(values * MIX_1, MASK_32)
    values = tf.bitwise.bitwise_xor(values, tf.bitwise.right_shift(values, 15))
    values = tf.bitwise.bitwise_and(values * MIX_2, MASK_32)
    values = tf.bitwise.bitwise_xor(values, tf.bitwise.right_shift(values, 16))
    return values


def latents_from_seeds(seeds, latent_dim):
    """int64 seeds [batch] in [0, 2**31 - 1] -> float32 [batch, latent_dim] standard normal values."""
    seeds = tf.reshape(tf.cast(seeds, tf.int64), [-1])
    checks = [
        tf.debugging.assert_greater_equal(seeds, tf.constant(0, tf.int64), message=f"seeds must be in [0, {MAX_SEED}]"),
        tf.debugging.assert_less_equal(seeds, tf.constant(MAX_SEED, tf.int64), message=f"seeds must be in [0, {MAX_SEED}]"),
    ]
    with tf.control_dependencies(checks):
        key = hash32(seeds + SEED_OFFSET)[:, tf.newaxis]
    counter = tf.range(latent_dim, dtype=tf.int64)[tf.newaxis, :] * 2 + 1
    first = hash32(tf.bitwise.bitwise_xor(key, hash32(counter)))
    second = hash32(tf.bitwise.bitwise_xor(key, hash32(counter + 1)))
    uniform_1 = (tf.cast(first, tf.float64) + 0.5) / 2.0**32
    uniform_2 = (tf.cast(second, tf.float64) + 0.5) / 2.0**32
    normal = tf.sqrt(-2.0 * tf.math.log(uniform_1)) * tf.cos(2.0 * np.pi * uniform_2)
    return tf.cast(normal, tf.float32)


def latents_for_digits(latents, digits, categories):
    """float32 latents [batch, d] with the largest of the first `categories` values swapped to each digit's position.

    Values are moved, never computed (tf.where), so the result is bit-identical to the numpy version.
    """
    digits = tf.reshape(tf.cast(digits, tf.int64), [-1])
    checks = [
        tf.debugging.assert_equal(tf.shape(digits)[0], tf.shape(latents)[0], message="give one digit per seed"),
        tf.debugging.assert_greater_equal(digits, tf.constant(0, tf.int64), message=f"digits must be in [0, {categories - 1}]"),
        tf.debugging.assert_less(digits, tf.constant(categories, tf.int64), message=f"digits must be in [0, {categories - 1}]"),
    ]
    with tf.control_dependencies(checks):
        code = latents[:, :categories]
    current = tf.argmax(code, axis=-1)
    at_current = tf.one_hot(current, categories, on_value=True, off_value=False)
    at_digit = tf.one_hot(digits, categories, on_value=True, off_value=False)
    largest = tf.reduce_max(code, axis=-1, keepdims=True)
    digit_value = tf.gather(code, digits, batch_dims=1)[:, tf.newaxis]
    swapped = tf.where(at_digit, largest, tf.where(at_current, digit_value, code))
    return tf.concat([swapped, latents[:, categories:]], axis=-1)
