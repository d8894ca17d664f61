"""Reading IDX files (the MNIST file format), with errors that say what is wrong.

An IDX file is a big-endian header, two zero bytes, a type code, the number of
dimensions, one uint32 per dimension, then the raw values. MNIST uses type 0x08
(unsigned bytes): 0x00000803 for images (N, rows, cols), 0x00000801 for labels (N,).
Only numpy and the standard library are used, so the serving side can read IDX too.
"""

import gzip
import math
import os
import struct
import zlib

import numpy as np

from keras_dcgan import atomic_write

UNSIGNED_BYTE = 0x08


class IdxFormatError(ValueError):
    """An IDX file that cannot be read, with the file and the reason in the message."""


def read_idx(path, expected_dims=None):
    """Return the array stored in the IDX file at `path` (`.gz` is decompressed).

    `expected_dims` (e.g. 3 for images, 1 for labels) is checked against the header.
    """
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as file:
                content = file.read()
        else:
            with open(path, "rb") as file:
                content = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise IdxFormatError(f"{path}: cannot read the file ({error}); is it a complete download?") from error

    if len(content) < 4:
        raise IdxFormatError(f"{path}: truncated: {len(content)} bytes, not even the 4-byte magic number")
    zero, type_code, dims = struct.unpack(">HBB", content[:4])
    if zero != 0 or type_code != UNSIGNED_BYTE or dims == 0:
        raise IdxFormatError(
            f"{path}: wrong magic number 0x{content[:4].hex()}; expected 0x000008NN "
            "(unsigned bytes, NN dimensions): this is not an IDX file of uint8 values"
        )
    if expected_dims is not None and dims != expected_dims:
        raise IdxFormatError(f"{path}: has {dims} dimension(s), expected {expected_dims}")
    header_size = 4 + 4 * dims
    if len(content) < header_size:
        raise IdxFormatError(f"{path}: truncated inside the header ({len(content)} of {header_size} bytes)")
    shape = struct.unpack(f">{dims}I", content[4:header_size])
    expected_size = header_size + math.prod(shape)  # Python integers: numpy's int64 product wraps for large shapes
    if len(content) != expected_size:
        problem = "truncated" if len(content) < expected_size else "has trailing bytes"
        raise IdxFormatError(
            f"{path}: {problem}: the header declares shape {shape} = {expected_size} bytes, "
            f"the file holds {len(content)}"
        )
    try:
        return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)
    except ValueError as error:  # an empty shape whose other dimensions overflow numpy's size, e.g. (0, 2**32 - 1, 2**32 - 1)
        raise IdxFormatError(f"{path}: the header declares shape {shape}, which numpy cannot hold ({error})") from None


def write_idx(path, array):
    """Write a uint8 array as IDX (gzip-compressed when `path` ends with .gz), atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, UNSIGNED_BYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.tobytes()
    if os.fspath(path).endswith(".gz"):
        content = gzip.compress(content)
    atomic_write.write_bytes(path, content)
