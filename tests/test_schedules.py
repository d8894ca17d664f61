"""The learning-rate schedule: its line, its use by the optimisers, and resuming on it."""

import numpy as np
import pytest

from keras_dcgan.config import TrainConfig
from keras_dcgan.schedules import HoldThenLinearDecay
from keras_dcgan.training import build_model, train
from tests.conftest import small_config


def test_rate_holds_then_falls_linearly_to_zero_at_the_last_step():
    schedule = HoldThenLinearDecay(8e-4, total_steps=1000, decay_from=0.5)
    rates = {step: float(schedule(step)) for step in (0, 499, 500, 750, 1000, 1200)}
    assert rates[0] == rates[499] == rates[500] == pytest.approx(8e-4)
    assert rates[750] == pytest.approx(4e-4)
    assert rates[1000] == rates[1200] == 0.0


@pytest.mark.parametrize("decay_from", [-0.1, 1.5])
def test_decay_start_outside_the_run_is_refused(decay_from):
    with pytest.raises(ValueError, match="lr_decay_start must be a fraction of the run"):
        TrainConfig(lr_decay_start=decay_from)


def test_both_optimisers_follow_the_schedule_of_the_run():
    config = TrainConfig(latent_dim=8, generator_filters=4, discriminator_filters=4, lr_decay_start=0.5)
    model = build_model(config, total_steps=100)
    for optimizer, initial in ((model.generator_optimizer, config.generator_lr),
                               (model.discriminator_optimizer, config.discriminator_lr)):
        optimizer.iterations.assign(75)
        assert float(optimizer.learning_rate) == pytest.approx(initial / 2)
    constant = build_model(TrainConfig(latent_dim=8, generator_filters=4, discriminator_filters=4, lr_decay_start=1.0), 100)
    constant.generator_optimizer.iterations.assign(99)
    assert float(constant.generator_optimizer.learning_rate) == pytest.approx(config.generator_lr)


@pytest.mark.slow
def test_decayed_run_resumes_from_its_checkpoint(tmp_path):
    first = train(small_config(tmp_path, epochs=1, lr_decay_start=0.5), verbose=0)
    resumed = train(small_config(tmp_path, epochs=2, lr_decay_start=0.5), verbose=0)
    assert (first.final_step, resumed.start_step, resumed.final_step) == (8, 8, 16)
    assert np.all(np.isfinite(resumed.history["g_loss"]))
