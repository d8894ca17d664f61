"""Which generator an export takes from a run dir: the final `generator.keras` or an epoch checkpoint.

Either way it is a float32 generator freshly built from the run's config.json (`RunDir.load_generator`),
so exports always compute in float32 and their BatchNorm layers run on the moving statistics.
"""

import os
from dataclasses import dataclass

from keras_dcgan.config import TrainConfig
from keras_dcgan.evaluation.metrics import QUALITY_SCALARS
from keras_dcgan.export.errors import ExportError
from keras_dcgan.run_dir import RunDir


@dataclass(frozen=True)
class GeneratorSource:
    generator: object  # keras.Model
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
    try:
        loaded = RunDir(run_dir).load_generator(epoch, find_epoch=True)
    except ValueError as error:
        raise ExportError(str(error)) from error
    return GeneratorSource(loaded.generator, loaded.config, run_dir, loaded.checkpoint, loaded.epoch, loaded.step)


def recorded_quality(run_dir, epoch):
    """The sample-quality scores `fit --eval-every` recorded in metrics.json for `epoch`, or None.

    {"epoch", "fcd", "classifier_score", "class_kl", "checkerboard", "classifier", "real_train_vs_test"}:
    numbers are only comparable at the same classifier, hence its key and the real-data reference.
    """
    if epoch is None:
        return None
    try:
        metrics = RunDir(run_dir).read_metrics()
        record = next((entry for entry in metrics["epochs"] if entry["epoch"] == epoch and "fcd" in entry), None)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # quality is informative only: a damaged metrics.json must not stop an export
    if record is None:
        return None
    return {
        "epoch": epoch,
        **{name: record[name] for name in QUALITY_SCALARS if name in record},
        "classifier": metrics.get("classifier"),
        "real_train_vs_test": metrics.get("real_train_vs_test"),
    }
