"""The fused BatchNorm layer computes what Keras' BatchNormalization computes.

Under several replicas it must take Keras' synchronised path instead; that is checked by
test_distributed's two-worker run, whose workers must end with identical moving statistics.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan.config import TrainConfig
from keras_dcgan.fused_batch_norm import FusedTrainingBatchNormalization
from keras_dcgan.inference_generator import float32_generator
from keras_dcgan.networks import build_discriminator, build_generator


def _pair(shape, dtype_policy="float32"):
    """A Keras BatchNormalization and a fused one with the same (non-trivial) weights."""
    options = dict(momentum=0.9, epsilon=1e-5, dtype=dtype_policy)
    keras_layer = keras.layers.BatchNormalization(**options)
    fused_layer = FusedTrainingBatchNormalization(**options)
    keras_layer.build(shape)
    fused_layer.build(shape)
    rng = np.random.default_rng(0)
    channels = shape[-1]
    weights = [
        rng.uniform(0.5, 1.5, channels),  # gamma
        rng.normal(0.0, 0.5, channels),  # beta
        rng.normal(0.0, 1.0, channels),  # moving mean
        rng.uniform(0.5, 2.0, channels),  # moving variance
    ]
    for layer in (keras_layer, fused_layer):
        layer.set_weights([w.astype(np.float32) for w in weights])
    return keras_layer, fused_layer


def _train_call(layer, inputs):
    """Outputs, gradients (inputs, gamma, beta) of a weighted sum, and the op types of the
    compiled training call (to tell which kernel ran)."""
    weights_of_outputs = tf.random.stateless_normal(inputs.shape, seed=[1, 2])

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * weights_of_outputs)
        return outputs, tape.gradient(loss, [inputs, layer.gamma.value, layer.beta.value])

    outputs, gradients = step(inputs)
    op_types = {op.type for op in step.get_concrete_function(inputs).graph.get_operations()}
    return np.asarray(tf.cast(outputs, tf.float32)), [np.asarray(tf.cast(g, tf.float32)) for g in gradients], op_types


def _assert_fused_kernel_ran(fused_op_types, keras_op_types):
    """Without this the comparisons below would pass if the layer silently fell back to Keras'."""
    assert {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= fused_op_types
    assert "FusedBatchNormV3" not in keras_op_types


@pytest.mark.parametrize("shape", [(16, 7, 7, 8), (32, 24)], ids=["images", "dense"])
def test_training_step_matches_keras_batch_norm(shape):
    keras_layer, fused_layer = _pair(shape)
    initial_moving_mean = fused_layer.get_weights()[2]
    inputs = tf.constant(np.random.default_rng(1).normal(3.0, 2.0, shape).astype(np.float32))
    keras_outputs, keras_gradients, keras_op_types = _train_call(keras_layer, inputs)
    fused_outputs, fused_gradients, fused_op_types = _train_call(fused_layer, inputs)

    _assert_fused_kernel_ran(fused_op_types, keras_op_types)
    np.testing.assert_allclose(fused_outputs, keras_outputs, atol=2e-5)
    for fused_gradient, keras_gradient in zip(fused_gradients, keras_gradients, strict=True):
        np.testing.assert_allclose(fused_gradient, keras_gradient, rtol=1e-4, atol=2e-4)
    # Moving statistics: the same momentum update with the biased batch variance.
    for fused_statistic, keras_statistic in zip(fused_layer.get_weights()[2:], keras_layer.get_weights()[2:], strict=True):
        np.testing.assert_allclose(fused_statistic, keras_statistic, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fused_layer.get_weights()[2], initial_moving_mean)  # they did move


def test_inference_is_keras_batch_norm():
    keras_layer, fused_layer = _pair((4, 5, 5, 3))
    inputs = np.random.default_rng(2).normal(size=(4, 5, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(fused_layer(inputs, training=False), keras_layer(inputs, training=False))


def test_mixed_bfloat16_keeps_bfloat16_activations_and_float32_statistics():
    shape = (16, 7, 7, 8)
    keras_layer, fused_layer = _pair(shape, dtype_policy="mixed_bfloat16")
    inputs = tf.cast(np.random.default_rng(3).normal(size=shape), tf.bfloat16)
    keras_outputs, _, keras_op_types = _train_call(keras_layer, inputs)
    fused_outputs, _, fused_op_types = _train_call(fused_layer, inputs)
    _assert_fused_kernel_ran(fused_op_types, keras_op_types)
    np.testing.assert_allclose(fused_outputs, keras_outputs, atol=0.05)  # bf16 keeps ~3 digits
    assert fused_layer.moving_variance.dtype == "float32"
    np.testing.assert_allclose(fused_layer.get_weights()[3], keras_layer.get_weights()[3], rtol=1e-3)
    assert fused_layer(inputs, training=True).dtype == tf.bfloat16


def test_training_networks_use_it_and_saved_copies_do_not():
    config = TrainConfig(latent_dim=16, generator_filters=4, discriminator_filters=4)

    def batch_norm_classes(model):
        return {type(layer) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}

    training_generator = build_generator(config)
    assert batch_norm_classes(training_generator) == {FusedTrainingBatchNormalization}
    assert batch_norm_classes(build_discriminator(config)) == {FusedTrainingBatchNormalization}
    copy = float32_generator(config)
    assert batch_norm_classes(copy) == {keras.layers.BatchNormalization}
    # Same variables in the same order: weights move between the two as they are.
    copy.set_weights(training_generator.get_weights())
    latents = np.random.default_rng(4).normal(size=(3, 16)).astype(np.float32)
    # Close, not equal: oneDNN may split the same convolution differently between two models.
    np.testing.assert_allclose(copy(latents, training=False), training_generator(latents, training=False), atol=1e-6)


@pytest.mark.parametrize("op", ["FusedBatchNormV3", "FusedBatchNormGradV3"])
def test_the_kernel_exists_for_every_training_precision_on_cpu_and_gpu(op):
    """No GPU here: check the installed TensorFlow registers the kernels a GPU run would need."""
    from tensorflow.python.framework import kernels

    registered = {
        (kernel.device_type, tf.dtypes.as_dtype(constraint.allowed_values.list.type[0]).name)
        for kernel in kernels.get_registered_kernels_for_op(op).kernel
        for constraint in kernel.constraint
        if constraint.name == "T"
    }
    for device in ("CPU", "GPU"):
        for dtype in ("float32", "bfloat16"):
            assert (device, dtype) in registered, f"{op} has no {device} kernel for {dtype}: {sorted(registered)}"
