"""Full training state on disk: both networks, both optimisers, the step.

Two series of `tf.train.Checkpoint`s in `run_dir/checkpoints/`:
- `epoch-N`: written at the end of every epoch and kept, so any epoch can be gone back to;
- `backup/step-S`: written every `backup_every_steps` steps, only the newest kept, so a
  run killed mid-epoch loses at most that many steps.
TensorFlow writes a checkpoint's files first and then atomically replaces the small
`checkpoint` index file that names the newest one, so a run killed while saving still
finds the previous complete checkpoint.

Resuming takes whichever of the two series is further along.
"""

import os
from dataclasses import dataclass

import tensorflow as tf

EPOCH_PREFIX = "epoch"
BACKUP_PREFIX = "step"


@dataclass(frozen=True)
class SavedState:
    path: str
    step: int


class TrainingCheckpoints:
    def __init__(self, directory, model, steps_per_epoch):
        self.directory = directory
        self.steps_per_epoch = steps_per_epoch
        self.checkpoint = tf.train.Checkpoint(
            generator=model.generator,
            discriminator=model.discriminator,
            generator_optimizer=model.generator_optimizer,
            discriminator_optimizer=model.discriminator_optimizer,
        )
        self.model = model
        self.epochs = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=None, checkpoint_name=EPOCH_PREFIX
        )
        self.backups = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(directory, "backup"), max_to_keep=1, checkpoint_name=BACKUP_PREFIX
        )

    def save_epoch(self, epoch):
        """Save the state at the end of `epoch` (1-based, as shown in the progress bar)."""
        return self.epochs.save(checkpoint_number=epoch)

    def save_backup(self):
        return self.backups.save(checkpoint_number=int(self.model.global_step.numpy()))

    def latest(self):
        """The saved state that is furthest along, or None for a new run."""
        candidates = []
        if self.epochs.latest_checkpoint:
            epoch = _number(self.epochs.latest_checkpoint)
            candidates.append(SavedState(self.epochs.latest_checkpoint, epoch * self.steps_per_epoch))
        if self.backups.latest_checkpoint:
            candidates.append(SavedState(self.backups.latest_checkpoint, _number(self.backups.latest_checkpoint)))
        return max(candidates, key=lambda state: state.step, default=None)

    def restore(self, path):
        """Load every saved variable into the model; fail if any is missing or mismatched."""
        try:
            self.checkpoint.read(path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as error:
            raise ValueError(
                f"checkpoint {path} cannot be restored into this model ({error}). "
                "Was it written by a different configuration, or is it corrupt?"
            ) from error
        return int(self.model.global_step.numpy())


def _number(checkpoint_path):
    return int(checkpoint_path.rsplit("-", 1)[1])


def saved_epochs(directory):
    """The epochs N for which `directory` holds an epoch-N checkpoint, in order."""
    if not tf.io.gfile.isdir(directory):
        return []
    numbers = (name[len(EPOCH_PREFIX) + 1 : -len(".index")] for name in tf.io.gfile.listdir(directory)
               if name.startswith(f"{EPOCH_PREFIX}-") and name.endswith(".index"))
    return sorted(int(number) for number in numbers if number.isdigit())


def epoch_checkpoint_path(directory, epoch):
    """Path prefix of the checkpoint saved at the end of `epoch`, checked to exist."""
    path = os.path.join(directory, f"{EPOCH_PREFIX}-{epoch}")
    if not tf.io.gfile.exists(f"{path}.index"):
        raise ValueError(f"{directory}: no checkpoint for epoch {epoch}; saved epochs: {saved_epochs(directory) or 'none'}")
    return path
