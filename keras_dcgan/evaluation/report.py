"""Evaluate images against a dataset's test split, and print them beside real data.

`Evaluator(train, test, classifier)` holds the test split's feature statistics and
period-2 power; `evaluate(images)` scores any images in [0, 1]; `real_reference(count)`
scores that many train-split images the same way, i.e. the value a perfect generator
would get at that sample count (the floor of FCD, the ceiling of the classifier score).
"""

from dataclasses import asdict, dataclass

import numpy as np

from keras_dcgan.data import load_splits
from keras_dcgan.evaluation import metrics
from keras_dcgan.evaluation.classifier import load_or_train_classifier, to_unit_range


@dataclass(frozen=True)
class Scores:
    samples: int
    fcd: float
    classifier_score: float
    class_shares: tuple
    class_kl: float
    unsure_share: float  # samples the classifier names with less than 90 % probability
    checkerboard: float  # period-2 power relative to the test split's (1.0 = as real images)

    def to_dict(self):
        return {**asdict(self), "class_shares": [round(float(share), 5) for share in self.class_shares]}


def make_evaluator(dataset="mnist", data_dir=None, cache_dir=None, log=print):
    """The Evaluator of a dataset (an IDX folder if `data_dir`, else TFDS), with its classifier trained on first use, then cached."""
    train, test = load_splits(dataset, data_dir)
    return Evaluator(train, test, load_or_train_classifier(train, test, cache_dir, log=log))


class Evaluator:
    def __init__(self, train, test, classifier):
        self.train = train
        self.test = test
        self.classifier = classifier
        test_images = to_unit_range(test.images)
        features, _ = classifier.features_and_probabilities(test_images)
        self.test_statistics = metrics.feature_statistics(features)
        self.test_period2 = metrics.period2_power_fraction(test_images)

    def evaluate(self, images):
        """Scores of float images [N, 28, 28, 1] in [0, 1] against the test split."""
        images = np.asarray(images, dtype=np.float32)
        features, probabilities = self.classifier.features_and_probabilities(images)
        shares = metrics.class_shares(probabilities)
        return Scores(
            samples=len(images),
            fcd=metrics.frechet_distance(metrics.feature_statistics(features), self.test_statistics),
            classifier_score=metrics.classifier_score(probabilities),
            class_shares=tuple(float(share) for share in shares),
            class_kl=metrics.kl_from_uniform(shares),
            unsure_share=metrics.unsure_share(probabilities),
            checkerboard=metrics.period2_power_fraction(images) / self.test_period2,
        )

    def real_reference(self, count):
        """The same scores for `count` train-split images (train vs test: what real data gets)."""
        if count > len(self.train):
            raise ValueError(f"the train split has {len(self.train)} images, fewer than the {count} samples asked for")
        return self.evaluate(to_unit_range(self.train.images[:count]))


def format_report(generated, real, title, classifier):
    """The generated scores beside the real-data reference, as text."""
    rows = [
        ("FCD (lower is better)", f"{generated.fcd:.3f}", f"{real.fcd:.3f}"),
        ("classifier score (max 10)", f"{generated.classifier_score:.3f}", f"{real.classifier_score:.3f}"),
        ("class KL from uniform", f"{generated.class_kl:.4f}", f"{real.class_kl:.4f}"),
        ("smallest / largest class", _extremes(generated.class_shares), _extremes(real.class_shares)),
        ("classified < 90 % sure", f"{generated.unsure_share:.1%}", f"{real.unsure_share:.1%}"),
        ("checkerboard (x real)", f"{generated.checkerboard:.3f}", f"{real.checkerboard:.3f}"),
    ]
    lines = [
        title,
        f"{generated.samples} generated and {real.samples} train-split images, each against the {classifier_test_note(classifier)}",
        f"{'':28} {'generated':>14} {'real (train vs test)':>22}",
        *[f"{name:28} {value:>14} {reference:>22}" for name, value, reference in rows],
        "class shares (generated): " + " ".join(f"{share:.3f}" for share in generated.class_shares),
    ]
    return "\n".join(lines)


def _extremes(shares):
    return f"{min(shares):.1%} / {max(shares):.1%}"


def classifier_test_note(classifier):
    return f"test split; classifier {classifier.key}, test accuracy {classifier.test_accuracy:.2%}"
