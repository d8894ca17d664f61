"""Image sources (IDX folder, TFDS) and the training pipeline."""

import shutil
import socket
import time

import numpy as np
import pytest

from helpers import small_config
from keras_dcgan import data
from keras_dcgan.data import DataError, load_idx_folder, load_images, load_tfds, training_dataset, unpack_labelled_batch
from keras_dcgan.idx import write_idx


def test_idx_folder_gives_uint8_images_and_labels(mnist_subset_dir):
    examples = load_idx_folder(mnist_subset_dir, "test")
    assert examples.images.shape == (1000, 28, 28, 1) and examples.images.dtype == np.uint8
    assert examples.labels.shape == (1000,) and examples.labels.dtype == np.int64


def test_full_mnist_from_shared_folder(full_mnist_dir):
    train = load_idx_folder(full_mnist_dir, "train")
    test = load_idx_folder(full_mnist_dir, "test")
    assert len(train) == 60000 and len(test) == 10000
    assert abs(train.images.mean() - 33.3) < 0.5  # 0.1307 * 255


def test_max_examples_limits_training_split(mnist_subset_dir):
    examples = load_images(small_config(max_examples=256), "train", data_dir=mnist_subset_dir)
    assert len(examples) == 256


def test_mismatched_label_file_is_named(tmp_path, mnist_subset_dir):
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_subset_dir / name, tmp_path / name)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    with pytest.raises(DataError, match="3000 images but .*train-labels-idx1-ubyte.gz holds 10 labels"):
        load_idx_folder(tmp_path, "train")


def test_missing_files_listed(tmp_path):
    (tmp_path / "notes.txt").write_text("not MNIST")
    with pytest.raises(DataError, match=r"no train-images-idx3-ubyte\[.gz\] found \(files present: notes.txt\)"):
        load_idx_folder(tmp_path, "train")


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_idx_folder(tmp_path / "absent", "train")


def test_pipeline_batches_scaled_images_and_drops_the_remainder():
    images = np.full((100, 28, 28, 1), 255, np.uint8)
    images[::2] = 0
    dataset = training_dataset(images, global_batch_size=32, seed=1)
    batches = [batch.numpy() for batch in dataset.take(7)]  # 3 batches per epoch, endless
    assert all(batch.shape == (32, 28, 28, 1) and batch.dtype == np.float32 for batch in batches)
    values = np.unique(np.concatenate(batches))
    np.testing.assert_array_equal(values, [-1.0, 1.0])


def test_pipeline_shuffles_each_epoch_reproducibly():
    images = np.arange(64, dtype=np.uint8).reshape(64, 1, 1, 1) * np.ones((1, 28, 28, 1), np.uint8)

    def first_two_epochs():
        batches = training_dataset(images, global_batch_size=64, seed=3).take(2)
        return [list(np.round((batch[:, 0, 0, 0] + 1) * 127.5).astype(int)) for batch in batches]

    first, again = first_two_epochs(), first_two_epochs()
    assert first == again  # same seed, same order
    assert sorted(first[0]) == list(range(64)) and first[0] != first[1]  # a permutation, reshuffled per epoch


def test_pipeline_with_labels_packs_each_image_with_its_own_label():
    # Image i is all pixels i, its label i % 10: the packed batches must keep every pair together.
    images = np.arange(96, dtype=np.uint8).reshape(96, 1, 1, 1) * np.ones((1, 28, 28, 1), np.uint8)
    labels = np.arange(96, dtype=np.int64) % 10
    for batch in training_dataset(images, global_batch_size=32, seed=2, labels=labels).take(4):
        assert batch.shape == (32, 28 * 28 + 1) and batch.dtype == np.float32
        batch_images, batch_labels = unpack_labelled_batch(batch)
        assert batch_images.shape == (32, 28, 28, 1) and batch_labels.dtype == np.int64
        indices = np.round((batch_images.numpy() + 1) * 127.5).astype(int)
        assert (indices == indices[:, :1, :1, :1]).all()  # no image mixed with another
        np.testing.assert_array_equal(batch_labels.numpy(), indices[:, 0, 0, 0] % 10)


def test_tfds_source_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        examples = load_tfds("mnist", "train")
    assert examples.images.shape == (20, 28, 28, 1) and examples.images.dtype == np.uint8
    assert examples.labels.shape == (20,)


def test_tfds_rejects_images_of_another_shape():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4), pytest.raises(DataError, match=r"shape \(32, 32, 3\)"):
        load_tfds("cifar10", "train")


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_offline_tfds_fails_fast_and_points_to_data_dir(tmp_path, monkeypatch):
    # Simulate "no network" the same way everywhere: the download host refuses connections.
    monkeypatch.setattr(data, "TFDS_DOWNLOAD_HOST", ("127.0.0.1", _closed_port()))
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        load_tfds("mnist", "train", data_dir=str(tmp_path))
    assert time.monotonic() - started < 20
    assert "--data-dir" in str(error.value) and "not prepared" in str(error.value)


def test_unknown_tfds_name():
    with pytest.raises(DataError, match="no dataset named 'no_such_dataset'"):
        load_tfds("no_such_dataset", "train")
