"""Export-time parity: the written SavedModel, ONNX file and LiteRT file against the Keras generator.

All run on the same latents (seeded, `keras_dcgan.latents`) at batch 1 and batch 64; the
reference is the generator in inference mode mapped to [0, 1]. Any max abs difference above
the tolerance raises ParityError, and the export leaves nothing behind. A SavedModel with the
`generate_digits` signature is checked against the Keras generator on the same seeds, each
asked for digit seed % categories (latents moved by `keras_dcgan.digits`).
"""

import numpy as np
import tensorflow as tf

from keras_dcgan.contract import DEFAULT_SIGNATURE, DIGITS, DIGITS_SIGNATURE, IMAGES, LATENT, SEEDS, SEEDS_SIGNATURE
from keras_dcgan.digits import cycled_digits, latents_for_digits
from keras_dcgan.export.errors import ParityError
from keras_dcgan.image_range import to_unit_range
from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.onnx_session import open_session
from keras_dcgan.serving.runtimes import LiteRTModel

TOLERANCE = 1e-4
BATCH_SIZES = (1, 64)


def keras_images(generator, latents):
    return to_unit_range(generator(latents, training=False).numpy())


def measure_parity(generator, latent_dim, saved_model, onnx_path, tolerance=TOLERANCE, digit_categories=0, litert_path=None):
    """{"tolerance", "seeds", "max_abs_difference": {...}} for a loaded SavedModel, an ONNX file and a LiteRT file.

    Raises ParityError above the tolerance.
    """
    seeds = np.arange(max(BATCH_SIZES), dtype=np.int64)
    latents = latents_from_seeds(seeds, latent_dim)
    reference = keras_images(generator, latents)
    session = open_session(onnx_path)
    litert = _open_litert(litert_path) if litert_path else None

    differences = {}
    for batch in BATCH_SIZES:
        expected = reference[:batch]
        from_saved_model = saved_model.signatures[DEFAULT_SIGNATURE](**{LATENT.name: tf.constant(latents[:batch])})[IMAGES.name]
        from_seeds = saved_model.signatures[SEEDS_SIGNATURE](**{SEEDS.name: tf.constant(seeds[:batch])})[IMAGES.name]
        from_onnx = session.run([IMAGES.name], {LATENT.name: latents[:batch]})[0]
        differences[f"saved_model_batch_{batch}"] = _max_abs(from_saved_model.numpy(), expected)
        differences[f"saved_model_seeds_batch_{batch}"] = _max_abs(from_seeds.numpy(), expected)
        differences[f"onnx_batch_{batch}"] = _max_abs(from_onnx, expected)
        if litert:
            differences[f"litert_batch_{batch}"] = _max_abs(litert.run(latents[:batch]), expected)
    if digit_categories:
        digits = cycled_digits(len(seeds), digit_categories)
        expected = keras_images(generator, latents_for_digits(latents, digits, digit_categories))
        inputs = {SEEDS.name: tf.constant(seeds), DIGITS.name: tf.constant(digits)}
        from_digits = saved_model.signatures[DIGITS_SIGNATURE](**inputs)[IMAGES.name]
        differences["saved_model_digits"] = _max_abs(from_digits.numpy(), expected)
    too_far = {name: value for name, value in differences.items() if not value <= tolerance}
    if too_far:
        described = ", ".join(f"{name} {value:.3g}" for name, value in too_far.items())
        raise ParityError(f"exported outputs differ from the Keras generator by more than {tolerance:g} (max abs): {described}")
    return {"tolerance": tolerance, "seeds": [int(seeds[0]), int(seeds[-1])], "max_abs_difference": differences}


def _open_litert(path):
    with open(path, "rb") as file:
        return LiteRTModel(file.read())


def _max_abs(actual, expected):
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
