"""Learning rates that fall linearly to 0 over the end of a run: the schedule, and a run trained on it."""

import keras
import numpy as np
import pytest

from helpers import small_run
from keras_dcgan import learning_rate as learning_rate_module
from keras_dcgan.checkpoints import TrainingCheckpoints, epoch_checkpoint_path
from keras_dcgan.config import RunOptions, TrainConfig
from keras_dcgan.data import steps_per_epoch
from keras_dcgan.inference_generator import read_epoch_checkpoint
from keras_dcgan.learning_rate import SHORT_RUN_STEPS, LinearDecayToZero, decay_fraction, learning_rate
from keras_dcgan.networks import build_generator
from keras_dcgan.run_dir import RunDir
from keras_dcgan.training import build_model, train


def test_the_rate_is_constant_then_falls_linearly_to_zero_at_the_last_step():
    total_steps = 4 * SHORT_RUN_STEPS
    schedule = learning_rate(4e-4, 0.25, total_steps=total_steps)
    rates = [float(schedule(step * total_steps // 8)) for step in (0, 6, 7, 8, 10)]
    np.testing.assert_allclose(rates, [4e-4, 4e-4, 2e-4, 0.0, 0.0], atol=1e-10)


def test_a_short_run_decays_over_a_share_of_itself_that_shrinks_with_its_length():
    # From SHORT_RUN_STEPS steps on the fraction is the one asked for: the default 10-epoch run's is.
    defaults, run = TrainConfig(), RunOptions()
    default_run_steps = run.epochs * steps_per_epoch(60_000, defaults.batch_size)
    assert decay_fraction(defaults.learning_rate_decay, default_run_steps) == defaults.learning_rate_decay
    assert decay_fraction(1.0, SHORT_RUN_STEPS) == 1.0
    assert decay_fraction(0.4, 10 * SHORT_RUN_STEPS) == 0.4
    assert decay_fraction(1.0, SHORT_RUN_STEPS // 2) == 0.5
    assert decay_fraction(0.4, SHORT_RUN_STEPS // 2) == 0.4
    schedule = learning_rate(1e-3, 1.0, total_steps=SHORT_RUN_STEPS // 2)
    assert schedule.decay_steps == SHORT_RUN_STEPS // 4
    assert float(schedule(SHORT_RUN_STEPS // 4)) == pytest.approx(1e-3)
    assert learning_rate(1e-3, 1.0, total_steps=3).decay_steps == 1  # a few steps still end at rate 0


def test_no_decay_is_the_plain_rate_and_a_decay_needs_the_runs_length():
    assert learning_rate(4e-4, 0.0, total_steps=None) == 4e-4
    config, _ = small_run("unused", learning_rate_decay=0.5)
    with pytest.raises(ValueError, match="learning_rate_decay needs the run's total_steps"):
        build_model(config)
    with pytest.raises(ValueError, match="decay_steps must be in 1..total_steps"):
        LinearDecayToZero(1e-3, total_steps=10, decay_steps=11)


def test_the_schedule_survives_serialisation():
    schedule = learning_rate(1e-4, 0.5, total_steps=300)
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert [float(copy(step)) for step in (0, 225, 300)] == [float(schedule(step)) for step in (0, 225, 300)]


@pytest.mark.slow
def test_a_run_with_decay_trains_on_the_schedule_ends_at_rate_zero_and_resumes_on_it(tmp_path, monkeypatch):
    monkeypatch.setattr(learning_rate_module, "SHORT_RUN_STEPS", 16)  # this run's 16 steps decay as a long run's
    config, options = small_run(tmp_path / "run", learning_rate_decay=0.75, epochs=2, generator_ema=0.9)
    history = train(config, options, verbose=0).history
    # The last 12 of 16 steps decay: after epoch 1 a third of the decay is done, after epoch 2 all of it.
    np.testing.assert_allclose(history["generator_lr"], [config.generator_lr * 8 / 12, 0.0], rtol=1e-6)
    np.testing.assert_allclose(history["discriminator_lr"], [config.discriminator_lr * 8 / 12, 0.0], rtol=1e-6)
    # A resumed run rebuilds the schedule from the run's length and continues on it.
    steps_per_epoch = 512 // 64
    model = build_model(config, total_steps=2 * steps_per_epoch)
    checkpoints = TrainingCheckpoints(RunDir(options.run_dir).checkpoints_dir, model, steps_per_epoch)
    checkpoints.restore(epoch_checkpoint_path(checkpoints.directory, 1))
    assert float(model.generator_optimizer.learning_rate) == pytest.approx(history["generator_lr"][0])
    # evaluate and export read the generator (and its optimiser's weight average) from epoch checkpoints.
    assert read_epoch_checkpoint(build_generator(config), config, checkpoints.directory + "/epoch-2") == 2 * steps_per_epoch
