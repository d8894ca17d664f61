"""Asking a generator with a label-trained categorical code for a digit. numpy only.

The generator reads its category from the latent: c = argmax(latent[:k]) (categorical_code.py),
and a run with `code_labels` draws digit d in category d. To ask for digit d, the latent's
values at positions c and d swap places: the largest of the first k values then sits at d.
Swapping is a permutation of the latent's values, so the result is exactly a N(0, I) latent
conditioned on category d, and a latent already in category d is left as it is. No model
input changes: the ONNX file, TF Serving's latent signature and every back end take the
swapped latent, and seed s with digit d gives the same image everywhere.
"""

import numbers

import numpy as np

from keras_dcgan.latents import latents_from_seeds


def check_digits(digits, categories):
    """int64 [n] digits, each an integer in [0, categories), or ValueError saying which value is wrong."""
    checked = []
    for value in np.asarray(digits, dtype=object).reshape(-1).tolist():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < categories:
            raise ValueError(f"digits must be integers from 0 to {categories - 1}, got {value!r}")
        checked.append(int(value))
    return np.asarray(checked, dtype=np.int64)


def latents_for_digits(latents, digits, categories):
    """float32 latents [n, d] whose category (argmax of the first `categories` values) is each asked digit."""
    latents = np.array(latents, dtype=np.float32, copy=True)
    digits = check_digits(digits, categories)
    if len(digits) != len(latents):
        raise ValueError(f"got {len(digits)} digits for {len(latents)} latents: give one digit per latent")
    rows = np.arange(len(latents))
    current = latents[:, :categories].argmax(axis=1)
    current_values = latents[rows, current]
    latents[rows, current] = latents[rows, digits]
    latents[rows, digits] = current_values
    return latents


def digit_latents_from_seeds(seeds, digits, latent_dim, categories):
    """The latent of each seed, moved to the category of the digit asked with it."""
    return latents_for_digits(latents_from_seeds(seeds, latent_dim), digits, categories)


def cycled_digits(count, categories):
    """0, 1, ..., categories - 1, 0, 1, ...: `count` digits asked equally often (for measuring)."""
    return np.arange(count, dtype=np.int64) % categories
