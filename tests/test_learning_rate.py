"""Learning rates that fall linearly to 0 over the end of a run: the schedule, and a run trained on it."""

import keras
import numpy as np
import pytest

from helpers import small_run
from keras_dcgan.checkpoints import TrainingCheckpoints, epoch_checkpoint_path
from keras_dcgan.inference_generator import read_epoch_checkpoint
from keras_dcgan.learning_rate import LinearDecayToZero, learning_rate
from keras_dcgan.networks import build_generator
from keras_dcgan.run_dir import RunDir
from keras_dcgan.training import build_model, train


def test_the_rate_is_constant_then_falls_linearly_to_zero_at_the_last_step():
    schedule = learning_rate(4e-4, 0.25, total_steps=1000)
    rates = [float(schedule(step)) for step in (0, 750, 875, 1000, 1200)]
    np.testing.assert_allclose(rates, [4e-4, 4e-4, 2e-4, 0.0, 0.0], atol=1e-10)


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
def test_a_run_with_decay_trains_on_the_schedule_ends_at_rate_zero_and_resumes_on_it(tmp_path):
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
