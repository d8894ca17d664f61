"""Which generator an export takes from a run dir: the final `generator.keras` or an epoch checkpoint.

Either way the result is a float32 generator freshly built from the run's config.json (a
`mixed_bfloat16` run's weights are float32 variables, copied over), so exports always compute
in float32 and their BatchNorm layers run on the moving statistics (inference mode). For a run
with `generator_ema`, an epoch checkpoint gives the weight average with re-estimated BatchNorm
statistics (`keras_dcgan.inference_generator`, the recipe training uses for generator.keras).
"""

import json
import os
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan.checkpoints import epoch_checkpoint_path, saved_epochs
from keras_dcgan.config import TrainConfig
from keras_dcgan.evaluation.during_training import METRICS_FILE, SCALARS
from keras_dcgan.inference_generator import float32_generator, read_epoch_checkpoint
from keras_dcgan.export.errors import ExportError
from keras_dcgan.training import CONFIG_FILE, GENERATOR_FILE

CHECKPOINTS_DIR = "checkpoints"
# Where tf.train.Checkpoint stores the generator optimiser's step counter (DCGAN.global_step).
STEP_KEY = "generator_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"


@dataclass(frozen=True)
class GeneratorSource:
    generator: keras.Model
    config: TrainConfig
    run_dir: str
    checkpoint: str  # relative to run_dir: "generator.keras" or "checkpoints/epoch-N"
    epoch: int | None
    step: int | None  # training steps behind these weights, when known

    @property
    def latent_dim(self):
        return self.config.latent_dim


def load_generator_source(run_dir, epoch=None):
    """The generator of `run_dir` (final, or at the end of `epoch`), with its config and step."""
    run_dir = os.path.abspath(run_dir)
    if not os.path.isdir(run_dir):
        raise ExportError(f"run dir {run_dir} does not exist")
    config = _load_config(run_dir)
    if epoch is None:
        return _final_generator(run_dir, config)
    return _epoch_generator(run_dir, config, epoch)


def _load_config(run_dir):
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ExportError(f"{run_dir} has no {CONFIG_FILE}: it is not a keras-dcgan run dir")
    try:
        return TrainConfig.load(path)
    except (ValueError, TypeError) as error:
        raise ExportError(f"{path} is not a valid training config: {error}") from error


def _final_generator(run_dir, config):
    path = os.path.join(run_dir, GENERATOR_FILE)
    checkpoints = os.path.join(run_dir, CHECKPOINTS_DIR)
    if not os.path.exists(path):
        raise ExportError(
            f"{run_dir} has no {GENERATOR_FILE} (training has not finished); "
            f"export a checkpoint with --epoch N instead (saved epochs: {saved_epochs(checkpoints) or 'none'})"
        )
    generator = float32_generator(config)  # first: it registers the package's layers that generator.keras may hold
    try:
        saved = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises ValueError, zipfile.BadZipFile, OSError... for a damaged file
        raise ExportError(f"{path} cannot be loaded ({type(error).__name__}: {error}); is it corrupt?") from error
    try:
        generator.set_weights(saved.get_weights())
    except ValueError as error:
        raise ExportError(f"{path} does not match the networks described by {CONFIG_FILE}: {error}") from error
    epoch, step = _matching_epoch(generator, config, checkpoints)
    return GeneratorSource(generator, config, run_dir, GENERATOR_FILE, epoch, step)


def _epoch_generator(run_dir, config, epoch):
    if epoch < 1:
        raise ExportError(f"epoch must be at least 1, got {epoch}")
    checkpoints = os.path.join(run_dir, CHECKPOINTS_DIR)
    try:
        path = epoch_checkpoint_path(checkpoints, epoch)
    except ValueError as error:
        raise ExportError(str(error)) from error
    generator = _restore(config, path)
    return GeneratorSource(generator, config, run_dir, os.path.relpath(path, run_dir), epoch, _step(path))


def _restore(config, path):
    """The checkpoint's generator (its weight average if the run keeps one); every variable must be found."""
    generator = float32_generator(config)
    try:
        read_epoch_checkpoint(generator, config, path)
    except ValueError as error:
        raise ExportError(str(error)) from error
    return generator


def _step(path):
    try:
        reader = tf.train.load_checkpoint(path)
        return int(reader.get_tensor(STEP_KEY)) if reader.has_tensor(STEP_KEY) else None
    except tf.errors.OpError:
        return None


def _matching_epoch(generator, config, checkpoints):
    """(epoch, step) of the newest epoch checkpoint if generator.keras holds its weights, else (None, None).

    generator.keras is written right after the last epoch's checkpoint, so they normally match;
    a run resumed for more epochs and stopped early would not, and then the step is unknown.
    """
    epochs = saved_epochs(checkpoints)
    if not epochs:
        return None, None
    path = os.path.join(checkpoints, f"epoch-{epochs[-1]}")
    try:
        candidate = _restore(config, path)
    except ExportError:
        return None, None
    # Equal up to float rounding: re-estimating BatchNorm statistics (generator_ema) sums in threads.
    same = all(np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(candidate.get_weights(), generator.get_weights()))
    return (epochs[-1], _step(path)) if same else (None, None)


def recorded_quality(run_dir, epoch):
    """The sample-quality scores `fit --eval-every` recorded in metrics.json for `epoch`, or None.

    {"epoch", "fcd", "classifier_score", "class_kl", "checkerboard", "classifier", "real_train_vs_test"}:
    numbers are only comparable at the same classifier, hence its key and the real-data reference.
    """
    path = os.path.join(run_dir, METRICS_FILE)
    if epoch is None or not os.path.exists(path):
        return None
    try:
        with open(path) as file:
            metrics = json.load(file)
        record = next((entry for entry in metrics["epochs"] if entry["epoch"] == epoch and "fcd" in entry), None)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # quality is informative only: a damaged metrics.json must not stop an export
    if record is None:
        return None
    return {
        "epoch": epoch,
        **{name: record[name] for name in SCALARS if name in record},
        "classifier": metrics.get("classifier"),
        "real_train_vs_test": metrics.get("real_train_vs_test"),
    }
