"""Where training images come from, and the tf.data pipeline that feeds them.

Two sources give the same thing, `LabeledImages` (uint8 images [N, 28, 28, 1] and their
integer labels), held in memory (MNIST is 47 MB):
- a TFDS dataset by name (`mnist` by default; any 28x28x1 image dataset works), and
- a local folder of IDX files, read with numpy, for machines without internet.

`training_dataset` turns the images into the stream `fit` consumes: float32 in [-1, 1],
cached, shuffled, batched with the global batch size (dropping the remainder, so every
replica always gets a full share), repeated, prefetched; with labels, for a categorical code
that learns them (`code_labels`), batches of images and labels packed in one tensor
(`pack_labelled_batch`).
"""

import os
import socket
from dataclasses import dataclass

import numpy as np

from keras_dcgan.idx import IdxFormatError, read_idx

IMAGE_SHAPE = (28, 28, 1)
PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
# IDX file stems per split, as distributed by the MNIST authors (and Fashion-MNIST).
IDX_SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
# Where TFDS downloads MNIST-like datasets from; probed before a download so that an
# offline machine fails at once instead of after TFDS's minutes of retries.
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


class DataError(ValueError):
    """Training data that cannot be used, with what to do about it in the message."""


@dataclass(frozen=True)
class LabeledImages:
    images: np.ndarray  # uint8 [N, 28, 28, 1]
    labels: np.ndarray  # int64 [N]

    def __len__(self):
        return len(self.images)

    def head(self, count):
        """The first `count` examples (all of them when `count` is None)."""
        if count is None:
            return self
        return LabeledImages(self.images[:count], self.labels[:count])


def find_idx_file(folder, stem):
    """The path of `stem` or `stem.gz` in `folder`, or a DataError listing what is there."""
    for name in (stem, f"{stem}.gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    present = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    raise DataError(
        f"{folder}: no {stem}[.gz] found (files present: {', '.join(present) or 'none'}). "
        "--data-dir must point at a folder of MNIST-format IDX files."
    )


def load_idx_folder(folder, split="train"):
    """Images and labels of `split` ("train" or "test") from a folder of IDX files."""
    if not os.path.isdir(folder):
        raise DataError(f"--data-dir {folder}: no such folder")
    if split not in IDX_SPLIT_PREFIXES:
        raise DataError(f"unknown split {split!r}; IDX folders hold {', '.join(IDX_SPLIT_PREFIXES)}")
    prefix = IDX_SPLIT_PREFIXES[split]
    images_path = find_idx_file(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = find_idx_file(folder, f"{prefix}-labels-idx1-ubyte")
    try:
        images = read_idx(images_path, expected_dims=3)
        labels = read_idx(labels_path, expected_dims=1)
    except IdxFormatError as error:
        raise DataError(str(error)) from error
    if images.shape[1:] != IMAGE_SHAPE[:2]:
        raise DataError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels: "
            "the two files do not belong together"
        )
    return LabeledImages(images[..., np.newaxis], labels.astype(np.int64))


def _network_reachable(address, timeout_seconds=3.0):
    try:
        with socket.create_connection(address, timeout=timeout_seconds):
            return True
    except OSError:
        return False


def _tfds_to_numpy(dataset):
    """All (image, label) pairs of a TFDS split as two arrays (batch_size=-1 crashes on unknown cardinality)."""
    images, labels = [], []
    for image_batch, label_batch in dataset.batch(8192).as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    return np.concatenate(images), np.concatenate(labels)


def load_tfds(name, split="train", data_dir=None):
    """Images and labels of a TFDS image dataset, downloading it only if the network is there."""
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, download=False)
    except tfds.core.registered.DatasetNotFoundError as unknown:
        raise DataError(f"TFDS has no dataset named {name!r}: {unknown}") from None
    except AssertionError:  # not prepared in data_dir: a download is needed
        if not _network_reachable(TFDS_DOWNLOAD_HOST):
            raise DataError(
                f"TFDS dataset {name!r} is not prepared on this machine and cannot be downloaded "
                f"(no connection to {TFDS_DOWNLOAD_HOST[0]}). Train from local IDX files instead: "
                "keras-dcgan fit --data-dir FOLDER, where FOLDER holds train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."
            ) from None
        dataset = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, download=True)
    images, labels = _tfds_to_numpy(dataset)
    if images.shape[1:] != IMAGE_SHAPE or images.dtype != np.uint8:
        raise DataError(
            f"TFDS dataset {name!r} has images of shape {images.shape[1:]} and dtype {images.dtype}; "
            f"this model needs uint8 images of shape {IMAGE_SHAPE}"
        )
    return LabeledImages(images, labels.astype(np.int64))


def load_split(dataset, split, data_dir=None):
    """LabeledImages of `split` ("train" or "test"): from the IDX folder `data_dir` if given, else TFDS's `dataset`."""
    return load_idx_folder(data_dir, split) if data_dir else load_tfds(dataset, split)


def load_splits(dataset, data_dir=None):
    """Train and test LabeledImages of a dataset (`load_split`)."""
    return load_split(dataset, "train", data_dir), load_split(dataset, "test", data_dir)


def load_images(config, split="train", data_dir=None):
    """The images of `split` of a TrainConfig's dataset (`load_split`), at most `max_examples` of train, at least one batch."""
    examples = load_split(config.dataset, split, data_dir)
    if split == "train":
        examples = examples.head(config.max_examples)
    if len(examples) < config.batch_size:
        raise DataError(
            f"{len(examples)} {split} examples are fewer than one batch of {config.batch_size}; "
            "lower --batch-size or use more examples"
        )
    return examples


def scale_images(images):
    """uint8 [0, 255] -> float32 [-1, 1], the generator's tanh range."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 127.5 - 1.0


def check_code_labels(labels, categories):
    """The labels as categories of a code with `categories` values, or a DataError saying what to change."""
    if labels.min() < 0 or labels.max() >= categories:
        raise DataError(
            f"the training labels run from {labels.min()} to {labels.max()}, but the categorical code has "
            f"{categories} categories (0 to {categories - 1}): pass --categorical-code {labels.max() + 1}, "
            "or --no-code-labels to learn the categories without labels"
        )
    return labels


def pack_labelled_batch(images, labels):
    """float32 [N, 28*28 + 1]: images [N, 28, 28, 1] flattened, their integer labels (exact below 2**24) as the last column.

    One tensor rather than a dict or a tuple: before `fit` trains under a tf.distribute strategy,
    Keras draws one batch and reduces it across replicas, which MultiWorkerMirroredStrategy does
    for a tensor but not for a structure of them; and Keras would read a tuple's second item as
    targets for compiled losses, which this model has none of.
    """
    import tensorflow as tf

    flat_images = tf.reshape(tf.cast(images, tf.float32), [-1, PIXELS])
    return tf.concat([flat_images, tf.cast(labels, tf.float32)[:, tf.newaxis]], axis=1)


def unpack_labelled_batch(batch):
    """(images float32 [N, 28, 28, 1], labels int64 [N]) of a `pack_labelled_batch` batch."""
    import tensorflow as tf

    return tf.reshape(batch[:, :PIXELS], [-1, *IMAGE_SHAPE]), tf.cast(batch[:, PIXELS], tf.int64)


def training_dataset(images, global_batch_size, seed, labels=None):
    """An endless stream of shuffled float32 batches in [-1, 1] (with labels: packed with them), one epoch after another.

    Shuffling has a fixed seed, so the order of every epoch is reproducible. The explicit
    DATA auto-shard policy makes multi-worker runs split batches, not files (there are none).
    """
    import tensorflow as tf

    if labels is None:
        dataset, scale = tf.data.Dataset.from_tensor_slices(images), scale_images
    else:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))

        def scale(image_batch, label_batch):
            return pack_labelled_batch(scale_images(image_batch), label_batch)
    dataset = (
        dataset
        .cache()
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch_size, drop_remainder=True)
        .map(scale, num_parallel_calls=tf.data.AUTOTUNE)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def steps_per_epoch(example_count, global_batch_size):
    return example_count // global_batch_size
