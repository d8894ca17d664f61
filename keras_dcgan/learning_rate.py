"""`LinearDecayToZero`: a constant learning rate that falls linearly to 0 over the end of a run.

GAN weights keep moving as long as the rates are high (the generator's last weights swing
from epoch to epoch); annealing both rates to 0 over the last part of training lets them
settle where the run ends, as SN-GAN (Miyato et al. 2018) trains. A run too short to learn
much at full rates gains more from them than from settling, so it decays over a shorter end
(`decay_fraction`).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dcgan")
class LinearDecayToZero(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_rate` until step total_steps - decay_steps, then linearly to 0 at `total_steps`."""

    def __init__(self, initial_rate, total_steps, decay_steps):
        if not 0 < decay_steps <= total_steps:
            raise ValueError(f"decay_steps must be in 1..total_steps ({total_steps}), got {decay_steps}")
        self.initial_rate = float(initial_rate)
        self.total_steps = int(total_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        steps_left = ops.cast(self.total_steps, "float32") - ops.cast(step, "float32")
        return self.initial_rate * ops.clip(steps_left / self.decay_steps, 0.0, 1.0)

    def get_config(self):
        return {"initial_rate": self.initial_rate, "total_steps": self.total_steps, "decay_steps": self.decay_steps}


# A run of fewer steps than this decays over at most a share total_steps / SHORT_RUN_STEPS of
# itself: the shorter the run, the larger the share it trains at full rates.
SHORT_RUN_STEPS = 3000


def decay_fraction(fraction, total_steps):
    """The share of a run of `total_steps` steps over which its rates fall: `fraction` (`learning_rate_decay`), capped for a short run."""
    return min(fraction, total_steps / SHORT_RUN_STEPS)


def learning_rate(initial_rate, fraction, total_steps):
    """`initial_rate`, or its linear decay to 0 over the last `decay_fraction(fraction, total_steps)` of `total_steps` steps."""
    if not fraction:
        return initial_rate
    return LinearDecayToZero(initial_rate, total_steps, max(1, round(decay_fraction(fraction, total_steps) * total_steps)))
