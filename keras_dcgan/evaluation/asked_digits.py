"""How often a generator that takes digits draws the digit it is asked for.

Seeds SEED, SEED+1, ... are asked for digits 0, 1, ..., 9, 0, ... in turn (keras_dcgan.digits),
and the dataset's classifier names each image: the share of each digit's samples named as
that digit, and of all samples. Chance is one in the number of classes.
"""

from dataclasses import dataclass

import numpy as np

from keras_dcgan.digits import cycled_digits, digit_latents_from_seeds


@dataclass(frozen=True)
class AskedDigits:
    samples: int
    accuracy: float  # of all samples, named as the digit asked
    per_digit: tuple  # accuracy of each digit's samples

    def to_dict(self):
        return {"samples": self.samples, "accuracy": round(self.accuracy, 5), "per_digit": [round(value, 5) for value in self.per_digit]}

    def describe(self):
        return (f"asked digits named as asked: {self.accuracy:.2%} of {self.samples} (worst digit "
                f"{int(np.argmin(self.per_digit))}: {min(self.per_digit):.2%}); per digit "
                + " ".join(f"{digit}:{share:.1%}" for digit, share in enumerate(self.per_digit)))


def measure_asked_digits(generate, classifier, latent_dim, categories, samples, seed=0):
    """AskedDigits of `generate` (latents -> images in [0, 1]) over `samples` seeded latents."""
    digits = cycled_digits(samples, categories)
    images = generate(digit_latents_from_seeds(np.arange(seed, seed + samples), digits, latent_dim, categories))
    _, probabilities = classifier.features_and_probabilities(np.asarray(images, dtype=np.float32))
    named = np.asarray(probabilities).argmax(axis=1)
    per_digit = tuple(float((named[digits == digit] == digit).mean()) for digit in range(categories))
    return AskedDigits(samples=samples, accuracy=float((named == digits).mean()), per_digit=per_digit)
