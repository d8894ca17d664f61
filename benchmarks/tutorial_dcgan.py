"""The TensorFlow DCGAN tutorial (tensorflow.org/tutorials/generative/dcgan), re-implemented
from its published description as the reference for the benchmarks.

As published: MNIST scaled to [-1, 1], shuffle buffer 60,000, batch 256, noise size 100,
Adam 1e-4 for both networks, binary cross-entropy on logits, and a hand-written
`@tf.function` step with two gradient tapes. Its layers:

    generator      Dense 7*7*256 (no bias) -> BN -> LeakyReLU -> Reshape 7x7x256
                   -> Conv2DTranspose 128 5x5 stride 1 (no bias) -> BN -> LeakyReLU
                   -> Conv2DTranspose 64 5x5 stride 2 (no bias) -> BN -> LeakyReLU
                   -> Conv2DTranspose 1 5x5 stride 2 (no bias), tanh
    discriminator  Conv2D 64 5x5 stride 2 -> LeakyReLU -> Dropout 0.3
                   -> Conv2D 128 5x5 stride 2 -> LeakyReLU -> Dropout 0.3 -> Flatten -> Dense 1

Layer defaults are the tutorial's (Keras' LeakyReLU slope, BatchNorm momentum, Glorot
initialisation). Only the wiring around it differs: the step takes an iterator so the
benchmarks can time windows of steps.
"""

import keras
import tensorflow as tf
from keras import layers

from keras_dcgan.image_range import to_unit_range

BATCH_SIZE = 256
NOISE_DIM = 100
LEARNING_RATE = 1e-4
BUFFER_SIZE = 60_000


def make_generator_model():
    return keras.Sequential(
        [
            keras.Input((NOISE_DIM,)),
            layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"),
        ],
        name="tutorial_generator",
    )


def make_discriminator_model():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(1),
        ],
        name="tutorial_discriminator",
    )


def make_dataset(images_uint8):
    """The tutorial's pipeline: scale to [-1, 1], shuffle(60000), batch(256) (it keeps the remainder)."""
    images = (tf.cast(images_uint8, tf.float32) - 127.5) / 127.5
    return tf.data.Dataset.from_tensor_slices(images).shuffle(BUFFER_SIZE).batch(BATCH_SIZE)


class TutorialDCGAN:
    def __init__(self, seed=0):
        keras.utils.set_random_seed(seed)
        self.generator = make_generator_model()
        self.discriminator = make_discriminator_model()
        self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
        self.generator_optimizer = keras.optimizers.Adam(LEARNING_RATE)
        self.discriminator_optimizer = keras.optimizers.Adam(LEARNING_RATE)
        self.batch_size = BATCH_SIZE
        self.latent_dim = NOISE_DIM

    def discriminator_loss(self, real_output, fake_output):
        real_loss = self.cross_entropy(tf.ones_like(real_output), real_output)
        fake_loss = self.cross_entropy(tf.zeros_like(fake_output), fake_output)
        return real_loss + fake_loss

    def generator_loss(self, fake_output):
        return self.cross_entropy(tf.ones_like(fake_output), fake_output)

    @tf.function
    def train_step(self, images):
        noise = tf.random.normal([BATCH_SIZE, NOISE_DIM])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = self.generator(noise, training=True)
            real_output = self.discriminator(images, training=True)
            fake_output = self.discriminator(generated_images, training=True)
            gen_loss = self.generator_loss(fake_output)
            disc_loss = self.discriminator_loss(real_output, fake_output)
        gradients_of_generator = gen_tape.gradient(gen_loss, self.generator.trainable_variables)
        gradients_of_discriminator = disc_tape.gradient(disc_loss, self.discriminator.trainable_variables)
        self.generator_optimizer.apply_gradients(zip(gradients_of_generator, self.generator.trainable_variables))
        self.discriminator_optimizer.apply_gradients(zip(gradients_of_discriminator, self.discriminator.trainable_variables))
        return gen_loss, disc_loss

    def train_epoch(self, dataset):
        """One pass over the dataset, as the tutorial's `train` loop does per epoch; returns images seen."""
        seen = 0
        for image_batch in dataset:
            self.train_step(image_batch)
            seen += int(image_batch.shape[0])
        return seen

    def generate(self, latents):
        """float32 images in [0, 1], inference mode."""
        return to_unit_range(self.generator(latents, training=False).numpy())
