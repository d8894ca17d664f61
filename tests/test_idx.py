"""The IDX reader on valid files and on every kind of broken one."""

import gzip

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import FUZZ_SETTINGS
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


def _header(*shape):
    return bytes([0, 0, 8, len(shape)]) + b"".join(size.to_bytes(4, "big") for size in shape)


VALID_HEADER = _header(5)


@pytest.mark.parametrize(
    "content, message",
    [
        (VALID_HEADER + bytes(3), "truncated"),
        (VALID_HEADER + bytes(7), "trailing bytes"),
        (bytes([0, 0, 0x0D, 1]) + (5).to_bytes(4, "big") + bytes(5), "wrong magic number"),
        (b"\x89PNG\r\n\x1a\n", "wrong magic number"),
        (bytes([0, 0, 8, 2, 0, 0]), "truncated inside the header"),
        (b"\x00\x00", "truncated"),
        # Found by the fuzz test below: 2**28 * 64 * 2**30 is 2**64, which an int64 product wraps to 0 ...
        (_header(2**28, 64, 2**30), "truncated: the header declares shape (268435456, 64, 1073741824)"),
        # ... and an empty shape numpy refuses to make, as its other dimensions overflow its size.
        (_header(0, 2**32 - 1, 2**32 - 1), "the header declares shape (0, 4294967295, 4294967295), which numpy cannot hold"),
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


# -- fuzzing: whatever the bytes, an array that matches its header or IdxFormatError ---------------

# Headers that pass the magic-number check, so that the fuzzer reaches the dimensions and sizes.
IDX_HEADERS = st.lists(st.sampled_from([0, 1, 2, 3, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1), min_size=1, max_size=4).map(
    lambda shape: _header(*shape)
)
IDX_CONTENTS = st.one_of(st.binary(max_size=64), st.builds(bytes.__add__, IDX_HEADERS, st.binary(max_size=64)))


@FUZZ_SETTINGS
@given(content=IDX_CONTENTS, compressed=st.booleans(), raw_gzip=st.booleans())
def test_any_bytes_give_the_array_their_header_declares_or_an_idx_format_error(tmp_path_factory, content, compressed, raw_gzip):
    """`compressed`: a valid gzip stream of the bytes; `raw_gzip`: the bytes themselves under a .gz name."""
    path = tmp_path_factory.getbasetemp() / ("fuzz-idx.gz" if compressed or raw_gzip else "fuzz-idx")
    path.write_bytes(gzip.compress(content) if compressed and not raw_gzip else content)
    try:
        array = read_idx(path)
    except IdxFormatError as error:
        assert str(error).startswith(f"{path}: ")
        return
    assert array.dtype == np.uint8 and 4 + 4 * array.ndim + array.size == len(content)
    assert array.tobytes() == content[4 + 4 * array.ndim :]
