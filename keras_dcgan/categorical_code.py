"""An InfoGAN categorical code drawn from the generator's ordinary N(0, I) latent.

A generator that maps one connected Gaussian onto ten separate digit classes must pass
through in-between shapes somewhere; those are the digits a classifier cannot name. InfoGAN
(Chen et al. 2016) gives the generator a categorical code c as well as noise, and has the
discriminator learn to recover c from the image (a head `Q` on its features, trained with the
cross-entropy of c): the generator is then rewarded for drawing each category distinctly, and
on MNIST the categories become the digit classes.

The code is taken from the latent itself: c = argmax(latent[:k]). For latents from N(0, I),
every index is equally likely to hold the largest of k values, so c is uniform over k
categories, and the generator's input stays a plain N(0, I) vector of `latent_dim` values:
the export contract, seeded latents and every client are unchanged. `CategoricalCode` feeds
the generator one_hot(c) followed by the whole latent.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_dcgan")
class CategoricalCode(keras.layers.Layer):
    """latent [batch, n] -> [batch, categories + n]: one_hot(argmax(latent[:, :categories])), then the latent."""

    def __init__(self, categories, **kwargs):
        super().__init__(**kwargs)
        self.categories = categories

    def call(self, latent):
        code = tf.one_hot(code_indices(latent, self.categories), self.categories, dtype=latent.dtype)
        return tf.concat([code, latent], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.categories + input_shape[1])

    def get_config(self):
        return {**super().get_config(), "categories": self.categories}


def code_indices(latent, categories):
    """The category of each latent: the index of the largest of its first `categories` values (ties: the first).

    TensorFlow's own ops: keras.ops.argmax adds a Bitcast (for -0.0) that ONNX has no op for.
    """
    return tf.argmax(latent[:, :categories], axis=-1)
