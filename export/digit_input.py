"""The manifest's `digits` entry: what the digit input of an export means, and how well it was drawn at export.

Only a generator whose categorical code learnt the training labels takes digits (the contract's rule,
`keras_dcgan.contract.digit_categories`).
The accuracy is measured here, on the exported float32 generator, with the evaluation
classifier of the run's dataset (keras_dcgan/evaluation/asked_digits.py); where that
dataset cannot be loaded, the entry says why instead of a figure.
"""

from keras_dcgan.contract import DIGITS_SIGNATURE
from keras_dcgan.data import DataError
from keras_dcgan.evaluation.asked_digits import measure_asked_digits

# The CLI's `export --digit-samples` default: the modules that need TensorFlow load where they are used.
DEFAULT_DIGIT_SAMPLES = 10_000


def describe_digits(source, data_dir=None, cache_dir=None, samples=DEFAULT_DIGIT_SAMPLES, log=print):
    """The manifest entry for `source` (export/generator_source.py), or None for a generator that takes no digits.

    `data_dir` is where the run's dataset lies as IDX files (None: TFDS), `cache_dir` where the
    evaluation classifier is cached: both are where-to-run options, not part of the run's config.
    `samples` seeded latents are scored (seeds 0 to samples - 1).
    """
    categories = source.config.digit_categories
    if not categories:
        return None
    dataset = f"IDX folder {data_dir}" if data_dir else f"TFDS dataset {source.config.dataset}"
    return {
        "categories": categories,
        "meaning": f"digit d draws label d of the training data ({dataset}); for MNIST, the digit d",
        "latent": f"the generator draws category argmax(latent[:{categories}]); digit d swaps the largest of those "
        "values with the value at position d (keras_dcgan.digits.latents_for_digits), a N(0, I) latent of category d",
        "signature": DIGITS_SIGNATURE,
        "asked_digits": _measure(source, categories, data_dir, cache_dir, samples, log),
    }


def _measure(source, categories, data_dir, cache_dir, samples, log):
    from keras_dcgan.evaluation.classifier import load_or_train_classifier
    from keras_dcgan.data import load_splits
    from keras_dcgan.inference_generator import unit_range_images

    try:
        classifier = load_or_train_classifier(*load_splits(source.config.dataset, data_dir), cache_dir, log=log)
    except DataError as error:
        return {"measured": False, "reason": f"the run's data could not be loaded to score the digits: {error}"}

    def generate(latents):
        return unit_range_images(source.generator, latents)

    asked = measure_asked_digits(generate, classifier, source.latent_dim, categories, samples)
    return {"measured": True, **asked.to_dict(), "classifier": classifier.key, "classifier_test_accuracy": classifier.test_accuracy}
