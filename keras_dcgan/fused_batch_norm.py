"""BatchNormalization that trains through TensorFlow's fused kernel when there is one replica.

Keras 3's BatchNormalization has no fused kernel: in training it computes the moments and
normalises with a dozen separate ops each way, and in this project's train step that was
14-23 % of the op time for no multiply-adds (`benchmarks/step_profile.py`). TensorFlow's
FusedBatchNormV3 (oneDNN on CPU, cuDNN on GPU, XLA on TPU) does the same maths in one
kernel forward and one backward.

The fused kernel only sees its own replica's batch, so under several replicas the layer
keeps Keras' synchronised path (global-batch statistics; see networks.py). Inference, and
anything unusual (a mask, renorm, a channel axis not last), also take Keras' own path.

The variables are Keras' own (gamma, beta, moving_mean, moving_variance), so checkpoints
and `set_weights` move freely between this layer and `keras.layers.BatchNormalization`;
the generators that are saved or exported are built with the plain layer, so loading them
never needs this package.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_dcgan")
class FusedTrainingBatchNormalization(keras.layers.BatchNormalization):
    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and mask is None and self._fused_kernel_fits(inputs)):
            return super().call(inputs, training=training, mask=mask)
        inputs = tf.cast(inputs, self.compute_dtype)
        channels = inputs.shape[-1]
        # The kernel wants NHWC: a Dense layer's [batch, channels] becomes [batch, 1, 1, channels].
        images = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, [-1, 1, 1, channels])
        # The kernel computes in float32 whatever the input (scale and offset must be float32),
        # as Keras' layer does under mixed precision. The wrapper raises epsilon to at least
        # 1.001e-5 (cuDNN's floor): 1e-5 becomes 1.001e-5, a change far below float32 noise
        # next to variances of order one.
        outputs, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
            images,
            scale=tf.cast(self.gamma, tf.float32),
            offset=tf.cast(self.beta, tf.float32),
            epsilon=self.epsilon,
            is_training=True,
        )
        # The kernel returns the unbiased (n - 1) variance for running averages; Keras keeps
        # the biased one, which is what the normalisation itself used.
        count = tf.cast(tf.size(images) // channels, tf.float32)
        variance = corrected_variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.reshape(outputs, tf.shape(inputs))

    def _fused_kernel_fits(self, inputs):
        rank = len(inputs.shape)
        return (
            rank in (2, 4)
            and self.axis in (-1, rank - 1)
            and self.center
            and self.scale
            and not self.renorm
            and tf.distribute.get_strategy().num_replicas_in_sync == 1
        )
