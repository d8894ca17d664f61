"""Image grids, PNG and GIF files from generator outputs. numpy and Pillow only.

Shared by training (sample grids per epoch) and the serving side (grids from ONNX or
TF Serving), which must run without TensorFlow.
"""

import io
import math

import numpy as np
from PIL import Image

from keras_dcgan import atomic_write


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Float images in `value_range` -> uint8 [0, 255], clipped."""
    low, high = value_range
    scaled = (np.asarray(images, dtype=np.float32) - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def tile(images, columns=None, padding=2):
    """uint8 images [N, H, W, 1] -> one uint8 grid [rows*(H+p)+p, columns*(W+p)+p], black gaps."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 1 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape [N, H, W, 1], got {images.dtype} {images.shape}")
    count, height, width, _ = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding), np.uint8)
    for index, image in enumerate(images[..., 0]):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def png_bytes(image):
    """A 2-D uint8 array (or [H, W, 1]) encoded as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image).squeeze(-1) if np.ndim(image) == 3 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path, image):
    atomic_write.write_bytes(path, png_bytes(image))


def write_gif(path, png_paths, frame_milliseconds=300):
    """An animated GIF of the given PNG files, in order (the last frame held longer)."""
    frames = [Image.open(png_path).convert("L") for png_path in png_paths]
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    durations = [frame_milliseconds] * (len(frames) - 1) + [frame_milliseconds * 5]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    atomic_write.write_bytes(path, buffer.getvalue())
