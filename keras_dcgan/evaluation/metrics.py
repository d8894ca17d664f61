"""Sample-quality numbers for 28x28 generators. numpy only.

- Fréchet distance between two Gaussians fitted to features (here: the penultimate layer of
  the dataset's classifier, "FCD"; Heusel et al. 2017 use Inception features, a poor fit
  for grayscale digits):  |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
- Classifier score exp(E_x[KL(p(y|x) || p(y))]) (the "Inception score" with the dataset's
  classifier): at most the number of classes, high when every sample is one confident class
  and the classes are used evenly.
- Class shares (argmax of p(y|x)) and their KL divergence from uniform: 0 when every class is
  generated equally often, log(K) when only one is (mode collapse).
- Period-2 power fraction: of each image's spectral power (DC excluded), the share on the
  frequency lines whose period is 2 pixels along an axis (index N/2 of the 2-D FFT). A
  stride-2 upsampling that treats odd and even pixels differently puts its checkerboard
  there, modulated by the image content. Reported relative to real images (1.0 = as real).
"""

import numpy as np

# The scores recorded per evaluated epoch during training, and in an export's manifest.
QUALITY_SCALARS = ("fcd", "classifier_score", "class_kl", "checkerboard")


def feature_statistics(features):
    """(mean, covariance) of features [N, D], in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features of shape [N >= 2, D], got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _symmetric_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(statistics_a, statistics_b):
    """Fréchet distance of two Gaussians given as (mean, covariance)."""
    mean_a, covariance_a = statistics_a
    mean_b, covariance_b = statistics_b
    # tr((S_a S_b)^(1/2)) = tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), a symmetric PSD matrix: stable.
    root_a = _symmetric_sqrt(covariance_a)
    middle = root_a @ covariance_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    difference = mean_a - mean_b
    distance = difference @ difference + np.trace(covariance_a) + np.trace(covariance_b) - 2.0 * trace_root
    return float(max(distance, 0.0))


def classifier_score(probabilities, epsilon=1e-12):
    """exp(E_x[KL(p(y|x) || p(y))]) for class probabilities [N, K]."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    marginal = probabilities.mean(axis=0, keepdims=True)
    kl = (probabilities * (np.log(probabilities + epsilon) - np.log(marginal + epsilon))).sum(axis=1)
    return float(np.exp(kl.mean()))


def unsure_share(probabilities, confidence=0.9):
    """Fraction of samples whose most likely class has probability below `confidence`.

    What pulls a classifier score down when the classes are balanced: digits the classifier
    cannot name (malformed or between two classes).
    """
    return float((np.asarray(probabilities).max(axis=1) < confidence).mean())


def class_shares(probabilities):
    """Fraction of samples whose most likely class is k, for each of the K classes."""
    probabilities = np.asarray(probabilities)
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    return counts / counts.sum()


def kl_from_uniform(shares):
    """KL(shares || uniform) in nats: 0 for equal shares, log(K) for a single class."""
    shares = np.asarray(shares, dtype=np.float64)
    present = shares > 0
    return float((shares[present] * np.log(shares[present] * len(shares))).sum())


def period2_power_fraction(images):
    """Share of spectral power (DC excluded) on the period-2 frequency lines, over images [N, H, W(, 1)]."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4:
        images = images[..., 0]
    height, width = images.shape[1:]
    if height % 2 or width % 2:
        raise ValueError(f"period-2 frequencies need even image sizes, got {height}x{width}")
    power = np.abs(np.fft.fft2(images)) ** 2
    power[:, 0, 0] = 0.0
    period2 = power[:, height // 2, :].sum() + power[:, :, width // 2].sum() - power[:, height // 2, width // 2].sum()
    return float(period2 / power.sum())
