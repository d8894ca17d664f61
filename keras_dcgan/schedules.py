"""Learning rates that hold, then fall linearly to zero at the run's last step.

The recipe of pix2pix and CycleGAN: a constant rate for the first part of the run, then a
straight line to zero, so the last updates are small and the final weights settle instead
of ending wherever the last large step left them. The schedule reads the optimiser's step
count, which checkpoints save, so a resumed run continues on the same line.
"""

import keras


@keras.saving.register_keras_serializable(package="keras_dcgan")
class HoldThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, initial_learning_rate, total_steps, decay_from):
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        if not 0 <= decay_from <= 1:
            raise ValueError(f"decay_from must be a fraction of the run in [0, 1], got {decay_from}")
        self.initial_learning_rate = initial_learning_rate
        self.total_steps = total_steps
        self.decay_from = decay_from

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        decay_steps = max(self.total_steps * (1.0 - self.decay_from), 1.0)
        remaining = keras.ops.clip((self.total_steps - step) / decay_steps, 0.0, 1.0)
        return self.initial_learning_rate * remaining

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total_steps": self.total_steps,
            "decay_from": self.decay_from,
        }
