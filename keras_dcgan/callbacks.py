"""The callbacks `fit` runs with: divergence guard, checkpoints, sample grids."""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan import image_grid


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is left as it was."""


class DivergenceGuard(keras.callbacks.Callback):
    """Stop at the first non-finite logged value, before anything is saved after it.

    It must come before the checkpoint callback in the list, so that the batch whose
    loss diverged is never written to disk.
    """

    def __init__(self, checkpoints_dir):
        super().__init__()
        self.checkpoints_dir = checkpoints_dir

    def on_train_batch_end(self, batch, logs=None):
        bad = {
            name: value
            for name, value in (logs or {}).items()
            if not np.all(np.isfinite(np.asarray(value, dtype=np.float64)))
        }
        if bad:
            step = int(self.model.global_step.numpy())
            values = ", ".join(f"{name}={np.asarray(value).ravel()[0]}" for name, value in bad.items())
            raise TrainingDiverged(
                f"training diverged at step {step}: {values}. Nothing was saved after the last good "
                f"checkpoint in {self.checkpoints_dir}. Rerunning the same command "
                "resumes from it; lower the learning rates (--generator-lr, --discriminator-lr) if it "
                "diverges again."
            )


class CheckpointSaver(keras.callbacks.Callback):
    """Backups every `every_steps` steps and a kept checkpoint at the end of every epoch."""

    def __init__(self, checkpoints, every_steps):
        super().__init__()
        self.checkpoints = checkpoints
        self.every_steps = every_steps
        self.last_backup_step = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.global_step.numpy())
        if self.last_backup_step is None:
            self.last_backup_step = step - 1
        if step - self.last_backup_step >= self.every_steps:
            self.checkpoints.save_backup()
            self.last_backup_step = step

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoints.save_epoch(epoch + 1)


class SampleGrids(keras.callbacks.Callback):
    """After every epoch: an 8x8 grid from a fixed latent as PNG and as a TensorBoard image, into `run` (a RunDir)."""

    def __init__(self, run, latent_dim, seed, count=64, write=True):
        super().__init__()
        self.run = run
        self.latent = np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)
        self.write = write
        self.writer = tf.summary.create_file_writer(run.log_dir("samples")) if write else None

    def on_epoch_end(self, epoch, logs=None):
        # Called on every worker: the generator may hold distributed variables.
        images = image_grid.to_uint8(self.model.generator(self.latent, training=False))
        if not self.write:
            return
        grid = image_grid.tile(images, columns=int(math.sqrt(len(images))))
        image_grid.write_png(self.run.sample_path(epoch + 1), grid)
        with self.writer.as_default():
            tf.summary.image("samples", grid[np.newaxis, ..., np.newaxis], step=epoch + 1)
        self.writer.flush()


class LearningRates(keras.callbacks.Callback):
    """Adds each optimiser's learning rate at the end of the epoch to the logs (history, TensorBoard, metrics.json).

    Added where the rates decay over the run; constant rates are in config.json.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["generator_lr"] = float(self.model.generator_optimizer.learning_rate)
            logs["discriminator_lr"] = float(self.model.discriminator_optimizer.learning_rate)


class ScalarSummaries(keras.callbacks.Callback):
    """Epoch means of the logged values as TensorBoard scalars.

    Keras' own TensorBoard callback needs scalar logs; ours are rank 1 (see gan.py).
    """

    def __init__(self, log_dir):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.scalar(name, float(np.asarray(value).ravel()[0]), step=epoch + 1)
        self.writer.flush()
