"""`DCGAN`: a subclassed keras.Model whose `train_step` trains both networks.

One step, from one forward pass (as the TensorFlow DCGAN tutorial does): the generator draws
a batch of fakes, the discriminator judges it and a batch of real images, and each network
takes an Adam step on its own loss. That loss is the adversarial loss (`adversarial_losses`),
plus whatever the categorical code's head adds (`code_losses`). With a categorical code
(categorical_code.py) the discriminator has a second head of one logit per category, and
`conditioning` says what the head does:
- "infogan": it names each fake's category, and both networks add that cross-entropy
  (InfoGAN, Chen et al. 2016), so each category draws one kind of image;
- "classifier": it names the real images' labels too (AC-GAN, Odena et al. 2017), so
  category k draws digit k;
- "projection": the logit of the image's label (a fake's category) adds to the real-vs-fake
  logit, and no classification loss is added (Miyato & Koyama 2018): the discriminator judges
  whether an image is a real digit of that label, so the generator is rewarded for drawing
  digit k as real k's are drawn, not for making it easy to classify.

Written for tf.distribute (see the project's ENVIRONMENT notes):
- both networks are built from their Input layers and both optimisers on their variables
  in `compile()`, inside the strategy scope, so Keras has nothing left to build from a batch
  (`call(images)` returns the discriminator's logits);
- Keras losses already divide by the replica count, so gradients sum correctly across
  replicas; the *logged* losses are multiplied back, so logs do not depend on it;
- logged values are rank 1: MultiWorkerMirroredStrategy cannot reduce scalars in `fit`.
Noise comes from stateless ops seeded by (seed, global step, replica): every replica draws
different noise, and a resumed run draws exactly what an uninterrupted one would have.
"""

import keras
import tensorflow as tf

from keras_dcgan.categorical_code import code_indices
from keras_dcgan.config import GAN_LOSSES, LABEL_CONDITIONINGS
from keras_dcgan.data import unpack_labelled_batch

# What the categorical code's head does (see the module's docstring); all but infogan need labels.
CONDITIONINGS = ("infogan", *LABEL_CONDITIONINGS)


class NegativeMean(keras.losses.Loss):
    """-mean(logits), the hinge loss's generator term; a Loss, so it is divided by the replica count as the others are."""

    def call(self, y_true, y_pred):
        return -tf.reduce_mean(y_pred, axis=-1)


class DCGAN(keras.Model):
    def __init__(self, generator, discriminator, latent_dim, seed=0, categorical_code=0, conditioning=None,
                 gan_loss="hinge", **kwargs):
        super().__init__(**kwargs)
        if bool(categorical_code) != (conditioning is not None) or conditioning not in (None, *CONDITIONINGS):
            raise ValueError(
                f"conditioning must be one of {', '.join(CONDITIONINGS)} with a categorical code and None without; "
                f"got {conditioning!r} with categorical_code={categorical_code}"
            )
        if gan_loss not in GAN_LOSSES:
            raise ValueError(f"gan_loss must be one of {', '.join(GAN_LOSSES)}; got {gan_loss!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.seed = seed
        self.categorical_code = categorical_code
        self.conditioning = conditioning
        self.uses_labels = conditioning in LABEL_CONDITIONINGS
        self.uses_hinge = gan_loss == "hinge"
        self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
        self.hinge = keras.losses.Hinge()
        self.negative_mean = NegativeMean()
        self.code_cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.real_score_tracker = keras.metrics.Mean(name="real_score")
        self.fake_score_tracker = keras.metrics.Mean(name="fake_score")
        names_categories = conditioning in ("infogan", "classifier")
        self.info_loss_tracker = keras.metrics.Mean(name="info_loss") if names_categories else None
        self.label_loss_tracker = keras.metrics.Mean(name="label_loss") if conditioning == "classifier" else None

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        super().compile(**kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        generator_optimizer.build(self.generator.trainable_variables)
        discriminator_optimizer.build(self.discriminator.trainable_variables)
        # The networks are built from their Input layers; nothing is left for Keras to
        # build by calling the model on data (it still reduces one drawn batch: see
        # data.pack_labelled_batch).
        self.built = True

    @property
    def metrics(self):
        """d_loss, g_loss, the discriminator's mean outputs D(x) and D(G(z)), info_loss with a code, label_loss with labels."""
        trackers = [self.d_loss_tracker, self.g_loss_tracker, self.real_score_tracker, self.fake_score_tracker]
        return trackers + [tracker for tracker in (self.info_loss_tracker, self.label_loss_tracker) if tracker]

    @property
    def global_step(self):
        """Training steps taken so far (saved and restored with the optimiser)."""
        return self.generator_optimizer.iterations

    def call(self, images, training=False):
        return self._split(self.discriminator(images, training=training))[0]

    def _split(self, outputs):
        """(real-vs-fake logits, code logits or None) of the discriminator's outputs."""
        return tuple(outputs) if self.categorical_code else (outputs, None)

    def sample_latent(self, batch_size):
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        step = tf.cast(self.global_step, tf.int64)
        seed = tf.stack([tf.constant(self.seed, tf.int64), step * 1024 + tf.cast(replica_id, tf.int64)])
        return tf.random.stateless_normal((batch_size, self.latent_dim), seed=seed)

    def train_step(self, data):
        images, labels = unpack_labelled_batch(data) if self.uses_labels else (data, None)
        latent = self.sample_latent(tf.shape(images)[0])
        codes = code_indices(latent, self.categorical_code) if self.categorical_code else None
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            fake_images = self.generator(latent, training=True)
            real_logits, real_code_logits = self._split(self.discriminator(images, training=True))
            fake_logits, fake_code_logits = self._split(self.discriminator(fake_images, training=True))
            if self.conditioning == "projection":
                real_logits += tf.gather(real_code_logits, labels[:, None], batch_dims=1)
                fake_logits += tf.gather(fake_code_logits, codes[:, None], batch_dims=1)
            d_loss, g_loss = self.adversarial_losses(real_logits, fake_logits)
            info_loss, label_loss = self.code_losses(codes, fake_code_logits, labels, real_code_logits, like=d_loss)
            # inside the tapes, which record only there
            d_total, g_total = d_loss + info_loss + label_loss, g_loss + info_loss

        discriminator_variables = self.discriminator.trainable_variables
        generator_variables = self.generator.trainable_variables
        self.discriminator_optimizer.apply_gradients(
            zip(discriminator_tape.gradient(d_total, discriminator_variables), discriminator_variables)
        )
        self.generator_optimizer.apply_gradients(
            zip(generator_tape.gradient(g_total, generator_variables), generator_variables)
        )

        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, d_loss.dtype)
        self.d_loss_tracker.update_state(d_loss * replicas)
        self.g_loss_tracker.update_state(g_loss * replicas)
        if self.info_loss_tracker is not None:
            self.info_loss_tracker.update_state(info_loss * replicas)
        if self.label_loss_tracker is not None:
            self.label_loss_tracker.update_state(label_loss * replicas)
        self.real_score_tracker.update_state(tf.sigmoid(real_logits))
        self.fake_score_tracker.update_state(tf.sigmoid(fake_logits))
        return {metric.name: tf.reshape(metric.result(), [1]) for metric in self.metrics}

    def adversarial_losses(self, real_logits, fake_logits):
        """(d_loss, g_loss) of the real-vs-fake logits.

        hinge (as SN-GAN and projection discriminators were trained):
            d_loss = mean(max(0, 1 - real_logits)) + mean(max(0, 1 + fake_logits)),  g_loss = -mean(fake_logits)
        non-saturating (the paper's cross-entropy, with the generator loss that keeps its gradient early):
            d_loss = BCE(1, real_logits) + BCE(0, fake_logits),  g_loss = BCE(1, fake_logits)
        """
        real_labels = tf.ones_like(real_logits)
        if self.uses_hinge:
            return self.hinge(real_labels, real_logits) + self.hinge(-real_labels, fake_logits), self.negative_mean(
                real_labels, fake_logits
            )
        fake_labels = tf.zeros_like(fake_logits)
        return self.cross_entropy(real_labels, real_logits) + self.cross_entropy(fake_labels, fake_logits), (
            self.cross_entropy(real_labels, fake_logits)
        )

    def code_losses(self, codes, fake_code_logits, labels, real_code_logits, like):
        """(info_loss, label_loss): the code head's cross-entropies, zeros (`like`'s shape) where it adds none.

        info_loss = CE(category, code_logits(fake)), InfoGAN's bound on the mutual information
        between category and image (weight 1 for both networks, as the paper has it for discrete
        codes); label_loss = CE(label, code_logits(real)), AC-GAN's, the discriminator's alone.
        """
        info_loss = label_loss = tf.zeros_like(like)
        if self.info_loss_tracker is not None:
            info_loss = self.code_cross_entropy(codes, fake_code_logits)
        if self.label_loss_tracker is not None:
            label_loss = self.code_cross_entropy(labels, real_code_logits)
        return info_loss, label_loss
