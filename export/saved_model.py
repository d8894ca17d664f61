"""The generator as a TF Serving SavedModel with three signatures.

    serving_default      latent float32 [batch, latent_dim] -> images float32 [batch, 28, 28, 1] in [0, 1]
    generate_png         latent float32 [batch, latent_dim] -> png_bytes string [batch] (8-bit grey PNGs)
    generate_from_seeds  seeds int64 [batch] in [0, 2**31 - 1] -> images, as above
    generate_digits      seeds int64 [batch], digits int64 [batch] -> images of those digits
                         (only for a generator whose code learnt the labels: keras_dcgan/digits.py)

Images are the generator's tanh output mapped from [-1, 1] to [0, 1]. TF Serving's REST API
returns outputs whose names end in `_bytes` as {"b64": ...}. The saved graph holds only core
TensorFlow ops and variables: it loads without Keras (plain TensorFlow, as TF Serving does).
"""

import tensorflow as tf

from keras_dcgan import image_range
from keras_dcgan.contract import DEFAULT_SIGNATURE, DIGITS, DIGITS_SIGNATURE, IMAGES, LATENT, PNG_BYTES, PNG_SIGNATURE, SEEDS, SEEDS_SIGNATURE
from keras_dcgan.export import seed_latents


class GeneratorModule(tf.Module):
    """Holds the generator's variables and the signature functions (`digit_categories`: 0 for none)."""

    def __init__(self, generator, latent_dim, digit_categories=0):
        super().__init__(name="dcgan_generator")
        self.generator = generator
        self.generator_variables = list(generator.variables)  # tracked, so they are saved
        self.latent_dim = latent_dim
        latent = tf.TensorSpec([None, latent_dim], tf.float32, name=LATENT.name)
        seeds = tf.TensorSpec([None], tf.int64, name=SEEDS.name)
        self.images = tf.function(self._images, input_signature=[latent])
        self.png = tf.function(self._png, input_signature=[latent])
        self.from_seeds = tf.function(self._from_seeds, input_signature=[seeds])
        self.digit_categories = digit_categories
        digits = tf.TensorSpec([None], tf.int64, name=DIGITS.name)
        self.digits = tf.function(self._digits, input_signature=[seeds, digits]) if digit_categories else None

    def to_unit_range(self, latent):
        # training=False: BatchNorm uses its moving statistics, so no image depends on the rest of its batch.
        return image_range.to_unit_range(self.generator(latent, training=False))

    def _images(self, latent):
        return {IMAGES.name: self.to_unit_range(latent)}

    def _png(self, latent):
        pixels = tf.cast(tf.round(tf.clip_by_value(self.to_unit_range(latent), 0.0, 1.0) * 255.0), tf.uint8)
        encoded = tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))
        return {PNG_BYTES.name: encoded}

    def _from_seeds(self, seeds):
        return {IMAGES.name: self.to_unit_range(seed_latents.latents_from_seeds(seeds, self.latent_dim))}

    def _digits(self, seeds, digits):
        latents = seed_latents.latents_from_seeds(seeds, self.latent_dim)
        return {IMAGES.name: self.to_unit_range(seed_latents.latents_for_digits(latents, digits, self.digit_categories))}

    def signatures(self):
        signatures = {DEFAULT_SIGNATURE: self.images, PNG_SIGNATURE: self.png, SEEDS_SIGNATURE: self.from_seeds}
        return {**signatures, DIGITS_SIGNATURE: self.digits} if self.digits else signatures


def save_saved_model(generator, latent_dim, directory, digit_categories=0):
    """Write the SavedModel files (saved_model.pb, variables/, ...) into `directory`."""
    module = GeneratorModule(generator, latent_dim, digit_categories)
    tf.saved_model.save(module, directory, signatures=module.signatures())


def describe_signatures(loaded):
    """{signature: {"inputs": {name: {"dtype", "shape"}}, "outputs": {...}}} read from a loaded SavedModel.

    Shapes list null for the dynamic batch dimension.
    """
    described = {}
    for name in sorted(loaded.signatures):
        function = loaded.signatures[name]
        inputs = function.structured_input_signature[1]
        described[name] = {
            "inputs": {key: _describe(spec) for key, spec in sorted(inputs.items())},
            "outputs": {key: _describe(spec) for key, spec in sorted(function.structured_outputs.items())},
        }
    return described


def _describe(spec):
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
