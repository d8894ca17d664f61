"""The IDX reader on valid files and on every kind of broken one."""

import gzip

import numpy as np
import pytest

from keras_dcgan.idx import IdxFormatError, read_idx, write_idx


def test_reads_committed_mnist_subset(mnist_subset_dir):
    images = read_idx(mnist_subset_dir / "train-images-idx3-ubyte.gz", expected_dims=3)
    labels = read_idx(mnist_subset_dir / "train-labels-idx1-ubyte.gz", expected_dims=1)
    assert images.shape == (3000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (3000,) and set(np.unique(labels)) == set(range(10))
    assert 25 < images.mean() < 40  # MNIST's mean pixel is about 33


@pytest.mark.parametrize("name", ["array-idx3-ubyte", "array-idx3-ubyte.gz"])
def test_round_trip_plain_and_gzip(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def _write_raw(path, content):
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as file:
        file.write(content)
    return path


VALID_HEADER = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big")


@pytest.mark.parametrize(
    "content, message",
    [
        (VALID_HEADER + bytes(3), "truncated"),
        (VALID_HEADER + bytes(7), "trailing bytes"),
        (bytes([0, 0, 0x0D, 1]) + (5).to_bytes(4, "big") + bytes(5), "wrong magic number"),
        (b"\x89PNG\r\n\x1a\n", "wrong magic number"),
        (bytes([0, 0, 8, 2, 0, 0]), "truncated inside the header"),
        (b"\x00\x00", "truncated"),
    ],
)
def test_broken_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = _write_raw(tmp_path / "labels-idx1-ubyte", content)
    with pytest.raises(IdxFormatError) as error:
        read_idx(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_wrong_number_of_dimensions(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.zeros(5, np.uint8))
    with pytest.raises(IdxFormatError, match="1 dimension.*expected 3"):
        read_idx(path, expected_dims=3)


def test_corrupt_gzip_stream(tmp_path, mnist_subset_dir):
    content = (mnist_subset_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(content[: len(content) // 2])  # a download cut in half
    with pytest.raises(IdxFormatError, match="cannot read the file"):
        read_idx(path)
