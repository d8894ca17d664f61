"""The one read of a Keras private attribute: the generator optimiser's weight averages.

Keras has no public accessor for the moving averages `use_ema=True` keeps, only
`finalize_variable_values`, which overwrites the variables with them. These tests fail when a
Keras release renames, reorders or changes that private list; pyproject.toml pins Keras to
the versions they passed on.
"""

import keras
import numpy as np

from keras_dcgan.inference_generator import weight_averages


def _averaging_optimizer_after_three_steps():
    variables = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.full((2, 2), 2.0, np.float32))]
    optimizer = keras.optimizers.Adam(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    optimizer.build(variables)
    for _ in range(3):
        optimizer.apply_gradients(zip([np.ones(3, np.float32), np.full((2, 2), -1.0, np.float32)], variables))
    return optimizer, variables


def test_weight_averages_are_what_finalize_variable_values_writes():
    optimizer, variables = _averaging_optimizer_after_three_steps()
    averages = [np.array(average) for average in weight_averages(optimizer)]
    assert [average.shape for average in averages] == [tuple(variable.shape) for variable in variables]
    # An average lags behind the variables it follows: this is not a list of the variables themselves.
    assert all(not np.allclose(average, np.asarray(variable)) for average, variable in zip(averages, variables))
    optimizer.finalize_variable_values(variables)  # Keras' public route to the same values
    for average, variable in zip(averages, variables, strict=True):
        np.testing.assert_array_equal(np.asarray(variable), average)


def test_weight_averages_follow_the_documented_update():
    optimizer, variables = _averaging_optimizer_after_three_steps()
    # Keras' rule: the first step copies the variable, later ones move it by (1 - momentum).
    # Adam's first steps move every element by ~learning_rate, signed like the gradient.
    first, second = weight_averages(optimizer)
    steps = np.array([1.0 - 0.1 * 1, 1.0 - 0.1 * 2, 1.0 - 0.1 * 3])
    expected = steps[0]
    for step in steps[1:]:
        expected = 0.5 * expected + 0.5 * step
    np.testing.assert_allclose(np.asarray(first), np.full(3, expected), atol=1e-4)
    np.testing.assert_allclose(np.asarray(second), np.full((2, 2), 2.0 + (1.0 - expected)), atol=1e-4)


def test_the_weight_average_of_a_short_run_is_of_trained_weights():
    import math

    from keras_dcgan.inference_generator import FIRST_WEIGHTS_LOG_SHARE, weight_average_momentum

    assert weight_average_momentum(0.999, 10 * 937) == 0.999  # the default run: long enough for its momentum
    assert weight_average_momentum(0.999, None) == 0.999 and weight_average_momentum(0.0, 937) == 0.0
    for steps in (20, 937, 2 * 937, 4 * 937):
        momentum = weight_average_momentum(0.999, steps)
        assert momentum < 0.999 and momentum**steps <= math.exp(-FIRST_WEIGHTS_LOG_SHARE)  # the first weights' share
    assert weight_average_momentum(0.999, 3) == 0.0  # too short to average at all: the last weights


def test_a_model_built_for_a_short_run_averages_with_the_lowered_momentum():
    from helpers import small_config
    from keras_dcgan.inference_generator import weight_average_momentum
    from keras_dcgan.training import build_model

    config = small_config(generator_ema=0.999)
    model = build_model(config, total_steps=100)
    assert model.generator_optimizer.ema_momentum == weight_average_momentum(0.999, 100) < 0.999
