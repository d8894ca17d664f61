"""Latent vectors from integer seeds, identical on every back end.

`latents_from_seeds(seeds, latent_dim)` is defined by integer arithmetic that numpy,
TensorFlow and ONNX all compute exactly: for seed s and element j, two 32-bit words
hash32(k ^ hash32(2j + 1)) and hash32(k ^ hash32(2j + 2)) with k = hash32(s + offset) (hash32 is a
"lowbias32"-style bijection of 32-bit integers, so different seeds never share a key)
become two uniforms, and Box-Muller turns them into one standard normal value. Every constant is below 2**31,
so each product of a 32-bit value and a constant fits in int64 with no overflow, which
makes a port with int64 ops (e.g. `keras_dcgan.export`'s TensorFlow version) bit-exact
up to the final float64 log/cos/sqrt. So seed 7 draws the same digit from the ONNX file
on a device, from TF Serving, and from the Keras model. numpy only.
"""

import numpy as np

MASK_32 = 0xFFFFFFFF
MIX_1 = 0x7FEB352D
MIX_2 = 0x2C1B3C6D
MAX_SEED = 2**31 - 1
SEED_OFFSET = 0x5BD1E995  # keeps seed 0 away from hash32's fixed point 0


def hash32(values):
    """Mix int64 values holding 32-bit unsigned integers; returns the same."""
    values = np.asarray(values, dtype=np.int64) & MASK_32
    values ^= values >> 16
    values = (values * MIX_1) & MASK_32
    values ^= values >> 15
    values = (values * MIX_2) & MASK_32
    values ^= values >> 16
    return values


def latents_from_seeds(seeds, latent_dim):
    """float32 [len(seeds), latent_dim] of standard normal values, a pure function of each seed."""
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if seeds.size and (seeds.min() < 0 or seeds.max() > MAX_SEED):
        raise ValueError(f"seeds must be integers in [0, {MAX_SEED}]")
    key = hash32(seeds + SEED_OFFSET)[:, np.newaxis]
    counter = np.arange(latent_dim, dtype=np.int64)[np.newaxis, :] * 2 + 1
    first = hash32(key ^ hash32(counter))
    second = hash32(key ^ hash32(counter + 1))
    # (k + 0.5) / 2**32 lies strictly inside (0, 1): the logarithm is always finite.
    uniform_1 = (first.astype(np.float64) + 0.5) / 2.0**32
    uniform_2 = (second.astype(np.float64) + 0.5) / 2.0**32
    normal = np.sqrt(-2.0 * np.log(uniform_1)) * np.cos(2.0 * np.pi * uniform_2)
    return normal.astype(np.float32)
