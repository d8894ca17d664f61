"""The dataset's own classifier, trained here on its train split and cached.

Its penultimate layer (`features`, 128 units) is the feature space of the Fréchet distance
and its softmax gives p(y|x) for the classifier score and class shares. Any dataset of
28x28x1 images with integer labels works (MNIST reaches >= 99 % test accuracy, Fashion-MNIST
about 92 %); numbers are only comparable at the same classifier, which is why it is cached
and keyed by the exact data it was trained on.

Cache: `<cache_dir>/classifier-<key>.keras` and `.json` beside it (test accuracy, sizes),
key = SHA-256 of the train and test images and labels. The default cache dir is
$KERAS_DCGAN_CACHE_DIR or ~/.cache/keras-dcgan.
"""

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from keras_dcgan import atomic_write

FEATURES_LAYER = "features"
DEFAULT_EPOCHS = 4
BATCH_SIZE = 128


def default_cache_dir():
    return os.environ.get("KERAS_DCGAN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "keras-dcgan")


def to_unit_range(images):
    """uint8 [0, 255] images -> float32 [0, 1], the classifier's (and the exports') input range."""
    return np.asarray(images, dtype=np.float32) / 255.0


def dataset_key(train, test):
    """A short content hash of both splits: one cached classifier per exact dataset."""
    digest = hashlib.sha256()
    for examples in (train, test):
        digest.update(np.ascontiguousarray(examples.images).tobytes())
        digest.update(np.ascontiguousarray(examples.labels).tobytes())
    return digest.hexdigest()[:16]


def build_classifier(class_count, seed=0):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    images = keras.Input((28, 28, 1), name="images")
    hidden = images
    for index, filters in enumerate((32, 32, 64, 64), start=1):
        hidden = layers.Conv2D(filters, 3, activation="relu", name=f"conv_{index}")(hidden)
        if index % 2 == 0:
            hidden = layers.MaxPooling2D(name=f"pool_{index // 2}")(hidden)
    features = layers.Dense(128, activation="relu", name=FEATURES_LAYER)(layers.Flatten(name="flatten")(hidden))
    logits = layers.Dense(class_count, name="logits")(layers.Dropout(0.4, name="dropout")(features))
    return keras.Model(images, logits, name="classifier")


@dataclass
class Classifier:
    """A trained classifier: features and class probabilities of images in [0, 1]."""

    model: object
    test_accuracy: float
    key: str

    def __post_init__(self):
        import keras

        self._both = keras.Model(self.model.inputs[0], [self.model.get_layer(FEATURES_LAYER).output, self.model.outputs[0]])

    @property
    def class_count(self):
        return self.model.outputs[0].shape[-1]

    def features_and_probabilities(self, images, batch_size=1000):
        """images float [N, 28, 28, 1] in [0, 1] -> (features [N, 128], probabilities [N, K])."""
        features, logits = [], []
        for start in range(0, len(images), batch_size):
            batch_features, batch_logits = self._both(np.asarray(images[start : start + batch_size], np.float32), training=False)
            features.append(np.asarray(batch_features))
            logits.append(np.asarray(batch_logits, dtype=np.float64))
        logits = np.concatenate(logits)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return np.concatenate(features), probabilities / probabilities.sum(axis=1, keepdims=True)


def train_classifier(train, test, epochs=DEFAULT_EPOCHS, seed=0, verbose=0):
    """A new classifier trained on `train` (LabeledImages); returns (model, test accuracy)."""
    import keras

    class_count = int(max(train.labels.max(), test.labels.max())) + 1
    model = build_classifier(class_count, seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(to_unit_range(train.images), train.labels, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=verbose)
    _, accuracy = model.evaluate(to_unit_range(test.images), test.labels, batch_size=1000, verbose=0)
    return model, float(accuracy)


def load_or_train_classifier(train, test, cache_dir=None, epochs=DEFAULT_EPOCHS, log=print):
    """The cached classifier of this exact dataset, training (and caching) it on first use."""
    import keras

    cache_dir = cache_dir or default_cache_dir()
    key = dataset_key(train, test)
    model_path = os.path.join(cache_dir, f"classifier-{key}.keras")
    info_path = os.path.join(cache_dir, f"classifier-{key}.json")
    if os.path.exists(model_path) and os.path.exists(info_path):
        with open(info_path) as file:
            info = json.load(file)
        return Classifier(keras.saving.load_model(model_path), info["test_accuracy"], key)

    log(f"Training the evaluation classifier on {len(train)} train images ({epochs} epochs); cached in {cache_dir}.")
    model, accuracy = train_classifier(train, test, epochs)
    log(f"Classifier test accuracy: {accuracy:.2%} on {len(test)} test images.")
    os.makedirs(cache_dir, exist_ok=True)
    # The model first: a reader takes the cache only once both files are there, and never half of one.
    with atomic_write.atomic_path(model_path) as temporary:
        model.save(temporary)
    info = {"test_accuracy": accuracy, "epochs": epochs, "train_examples": len(train), "test_examples": len(test)}
    atomic_write.write_json(info_path, info)
    return Classifier(model, accuracy, key)
