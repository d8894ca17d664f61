"""The run directory of `keras-dcgan fit`: its layout, and the generator it holds.

    run_dir/
        config.json              the experiment (config.TrainConfig); resuming with another one is refused
        checkpoints/             epoch-N (kept) and backup/step-S (newest only): see checkpoints.py
        samples/epoch_NNNN.png   grids from a fixed latent; samples/progress.gif at the end
        logs/train, logs/samples, logs/quality   TensorBoard
        metrics.json, metrics.png                sample quality during training (fit --eval-every)
        generator.keras          the final generator: float32, the weight average if the run keeps one

Training, its callbacks, evaluation and export all reach these files through `RunDir`; no
other module names them. TensorFlow and Keras are imported only by the methods that need them.
"""

import json
import os
from dataclasses import dataclass

from keras_dcgan import atomic_write
from keras_dcgan.config import TrainConfig
from keras_dcgan.output_paths import OutputPathError, check_output_folder

CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.keras"
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
METRICS_FILE = "metrics.json"
METRICS_PLOT_FILE = "metrics.png"
PROGRESS_GIF_FILE = "progress.gif"


class RunDirError(ValueError):
    """A folder that is not a run directory, or whose generator cannot be read."""


@dataclass(frozen=True)
class RunGenerator:
    """A float32 generator of a run, with where it came from."""

    generator: object  # keras.Model
    config: TrainConfig
    checkpoint: str  # relative to the run dir: "generator.keras" or "checkpoints/epoch-N"
    epoch: int | None  # the epoch whose end these weights are, when known
    step: int | None  # training steps behind these weights, when known


class RunDir:
    def __init__(self, path):
        self.path = os.fspath(path)
        self.config_path = self._join(CONFIG_FILE)
        self.generator_path = self._join(GENERATOR_FILE)
        self.checkpoints_dir = self._join(CHECKPOINTS_DIR)
        self.samples_dir = self._join(SAMPLES_DIR)
        self.progress_gif_path = self._join(SAMPLES_DIR, PROGRESS_GIF_FILE)
        self.metrics_path = self._join(METRICS_FILE)
        self.metrics_plot_path = self._join(METRICS_PLOT_FILE)

    def _join(self, *names):
        return os.path.join(self.path, *names)

    def log_dir(self, name):
        """TensorBoard folder `logs/name` (train, samples, quality)."""
        return self._join(LOGS_DIR, name)

    def sample_path(self, epoch):
        return self._join(SAMPLES_DIR, f"epoch_{epoch:04d}.png")

    def sample_paths(self, epochs):
        """The sample grids of epochs 1 to `epochs` that exist, in order."""
        return [path for path in map(self.sample_path, range(1, epochs + 1)) if os.path.exists(path)]

    def is_run(self):
        return os.path.isfile(self.config_path)

    def check_writable(self):
        """Raise RunDirError unless training can write here: the folder, or the one it would be made in.

        Checked before any work, so that a run never trains (or restores a checkpoint) only to
        fail at its first save.
        """
        try:
            check_output_folder(self.path, "--run-dir")
        except OutputPathError as error:
            raise RunDirError(str(error)) from None

    def create(self):
        """Make the run dir and the folders training writes files into."""
        os.makedirs(self.samples_dir, exist_ok=True)

    def read_config(self):
        if not self.is_run():
            raise RunDirError(f"{self.path} has no {CONFIG_FILE}: it is not a keras-dcgan run dir")
        with open(self.config_path) as file:
            text = file.read()
        try:
            return TrainConfig.from_json(text, source=self.config_path)
        except ValueError as error:
            raise RunDirError(str(error)) from error

    def write_config(self, config):
        atomic_write.write_text(self.config_path, config.to_json())

    def read_metrics(self):
        """The quality record `fit --eval-every` keeps in metrics.json: {"epochs": []} until there is one."""
        if not os.path.exists(self.metrics_path):
            return {"epochs": []}
        with open(self.metrics_path) as file:
            try:
                return json.load(file)
            except json.JSONDecodeError as error:
                raise RunDirError(f"{self.metrics_path} is not valid JSON ({error}); delete it to start a new one") from error

    def saved_epochs(self):
        from keras_dcgan.checkpoints import saved_epochs

        return saved_epochs(self.checkpoints_dir)

    def save_generator(self, generator):
        with atomic_write.atomic_path(self.generator_path) as temporary:
            generator.save(temporary)

    def load_generator(self, epoch=None, find_epoch=False):
        """The run's final generator.keras, or with `epoch` the generator of checkpoints/epoch-N.

        Either is a float32 generator freshly built from config.json; an epoch of a run that keeps
        a weight average gives that average with BatchNorm statistics re-estimated for it (the
        recipe training uses for generator.keras). `find_epoch=True` also finds the epoch and step
        of generator.keras, by comparing it with the newest epoch checkpoint.
        """
        config = self.read_config()
        if epoch is None:
            return self._final_generator(config, find_epoch)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise RunDirError(f"epoch must be an integer of at least 1, got {epoch!r}")
        generator, path, step = self._epoch_generator(config, epoch)
        return RunGenerator(generator, config, os.path.relpath(path, self.path), epoch, step)

    def _final_generator(self, config, find_epoch):
        import keras

        from keras_dcgan.inference_generator import float32_generator

        if not os.path.exists(self.generator_path):
            raise RunDirError(
                f"{self.path} has no {GENERATOR_FILE} (training has not finished); "
                f"use the checkpoint of an epoch instead, --epoch N (saved epochs: {self.saved_epochs() or 'none'})"
            )
        generator = float32_generator(config)  # first: it registers the package's layers that generator.keras may hold
        try:
            saved = keras.saving.load_model(self.generator_path, compile=False)
        except Exception as error:  # Keras raises ValueError, zipfile.BadZipFile, OSError... for a damaged file
            raise RunDirError(f"{self.generator_path} cannot be loaded ({type(error).__name__}: {error}); is it corrupt?") from error
        try:
            generator.set_weights(saved.get_weights())
        except ValueError as error:
            raise RunDirError(f"{self.generator_path} does not match the networks described by {CONFIG_FILE}: {error}") from error
        epoch, step = self._matching_epoch(generator, config) if find_epoch else (None, None)
        return RunGenerator(generator, config, GENERATOR_FILE, epoch, step)

    def _epoch_generator(self, config, epoch):
        """(float32 generator, checkpoint path, step) of the checkpoint saved at the end of `epoch`."""
        from keras_dcgan.checkpoints import epoch_checkpoint_path
        from keras_dcgan.inference_generator import float32_generator, read_epoch_checkpoint

        path = epoch_checkpoint_path(self.checkpoints_dir, epoch)
        generator = float32_generator(config)
        step = read_epoch_checkpoint(generator, config, path)
        return generator, path, step

    def _matching_epoch(self, generator, config):
        """(epoch, step) of the newest epoch checkpoint if `generator` holds its weights, else (None, None).

        generator.keras is written right after the last epoch's checkpoint, so they normally match;
        a run resumed for more epochs and stopped early would not, and then the step is unknown.
        """
        import numpy as np

        epochs = self.saved_epochs()
        if not epochs:
            return None, None
        try:
            candidate, _, step = self._epoch_generator(config, epochs[-1])
        except ValueError:
            return None, None
        # Equal up to float rounding: re-estimating BatchNorm statistics (generator_ema) sums in threads.
        same = all(np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(candidate.get_weights(), generator.get_weights()))
        return (epochs[-1], step) if same else (None, None)
