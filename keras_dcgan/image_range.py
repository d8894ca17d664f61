"""The generator draws in tanh's range [-1, 1]; every export, evaluation and image file works in [0, 1].

Plain arithmetic with no imports: it maps numpy arrays and TensorFlow tensors alike (inside
a traced export function too), and the TensorFlow-free serving side can use it.
"""

GENERATOR_RANGE = (-1.0, 1.0)
UNIT_RANGE = (0.0, 1.0)


def to_unit_range(generator_output):
    """[-1, 1] -> [0, 1]."""
    return (generator_output + 1.0) / 2.0
