"""The edge runtime: the exported generator over onnxruntime or LiteRT. numpy, onnxruntime, Pillow and stdlib only
(and ai-edge-litert for a .tflite file, the extra keras-dcgan[litert]).

    session = GeneratorSession("exports/dcgan/1/generator.onnx")   # checks manifest.json beside it
    session = GeneratorSession("exports/dcgan/1/generator.tflite") # the same, over LiteRT
    images = session.generate_from_seeds(range(16))                # float32 [16, 28, 28, 1] in [0, 1]
    sevens = session.generate_digits(range(16), [7] * 16)          # when the manifest records `digits`
    session.write_grid("digits.png", images)

Seeds become latents through `keras_dcgan.latents.latents_from_seeds`, the same function the
SavedModel's `generate_from_seeds` signature ports to TensorFlow, so seed N draws the same
digit here, from TF Serving and from `keras-dcgan serve`. A digit moves the latent
(`keras_dcgan.digits`), so the ONNX and LiteRT files take the same latent input either way.
"""

import os
import pathlib

import numpy as np

from keras_dcgan import image_grid
from keras_dcgan.contract import MANIFEST_NAME, VALUE_RANGE, ManifestError, manifest_digit_categories
from keras_dcgan.digits import latents_for_digits
from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.litert_session import MissingLiteRTError
from keras_dcgan.serving.manifest import read_manifest, verify_content
from keras_dcgan.serving.runtimes import runtime_for
# Latents are standard normal (|z| < 6 in practice); values near float32's maximum overflow inside
# the network. The output is checked as well, so a model that overflows sooner still answers 400.
LATENT_LIMIT = 1e6


class InputError(ValueError):
    """Latents or seeds of the wrong shape, type or value."""


class ModelFileError(ValueError):
    """The model file is missing, unreadable, or not a generator (latent [batch, d] -> images [batch, H, W, C])."""


class GeneratorSession:
    """Latents or integer seeds in, images out, from an ONNX or a LiteRT file (serving/runtimes.py); thread-safe.

    `manifest_path=None` uses `manifest.json` beside the file; the file's size, SHA-256
    and input/output names and shapes must match it, or ManifestError (a ValueError) is raised before
    anything runs. Without a manifest the file is refused, so that deleting the manifest cannot
    silently turn the check off; `verify=False` runs it unchecked. `threads` sets the runtime's
    intra-op threads (None: its default); 1 suits a server running requests in parallel.
    """

    def __init__(self, model_path, manifest_path=None, threads=None, verify=True):
        self.model_path = pathlib.Path(model_path)
        try:
            model_class = runtime_for(self.model_path)
        except ValueError as error:
            raise ModelFileError(str(error)) from None
        if not self.model_path.is_file():
            raise ModelFileError(f"{model_class.kind} file not found: {self.model_path}")
        if manifest_path is None and verify:
            manifest_path = self.model_path.parent / MANIFEST_NAME
            if not manifest_path.is_file():
                raise ManifestError(
                    f"no {MANIFEST_NAME} beside {self.model_path}: it holds the file's checksum; "
                    "restore it, or pass --no-verify to run the file unchecked"
                )
        self.manifest_path = pathlib.Path(manifest_path) if verify else None
        self.manifest = None
        content = self.model_path.read_bytes()  # checked and loaded from the same bytes
        if self.manifest_path is not None:
            self.manifest = read_manifest(self.manifest_path)
            verify_content(self.manifest, self.manifest_path, self.model_path, content)

        try:
            self._model = model_class(content, threads)
        except MissingLiteRTError:
            raise
        except Exception as error:  # each runtime raises its own exception types for unreadable models
            raise ModelFileError(f"{model_class.runtime} cannot load {self.model_path}: {error}") from error
        self._read_shapes()

    def _read_shapes(self):
        model = self._model
        if len(model.input_shape) != 2 or model.input_shape[1] is None:
            raise ModelFileError(f"{self.model_path}: input {model.input_name} has shape {model.input_shape}, expected [batch, latent_dim]")
        if len(model.output_shape) != 4 or None in model.output_shape[1:]:
            raise ModelFileError(f"{self.model_path}: output {model.output_name} has shape {model.output_shape}, expected [batch, H, W, C]")
        self.input_name = model.input_name
        self.output_name = model.output_name
        self.latent_dim = model.input_shape[1]
        self.image_shape = tuple(model.output_shape[1:])
        self.value_range = VALUE_RANGE
        self.version = None
        self.digit_categories = 0
        if self.manifest is not None:
            self._check_against_manifest()

    def _check_against_manifest(self):
        manifest, where, entry_name = self.manifest, self.manifest_path, self._model.manifest_entry
        if entry_name not in manifest:
            raise ManifestError(f"{where} has no {entry_name!r} entry describing {self.model_path.name}: re-export the model")
        entry = manifest[entry_name]
        expected = {
            f"{entry_name}.input": (entry.get("input", self.input_name), self.input_name),
            f"{entry_name}.output": (entry.get("output", self.output_name), self.output_name),
            "latent_dim": (manifest["latent_dim"], self.latent_dim),
            "image_shape": (tuple(manifest["image_shape"]), self.image_shape),
        }
        if self._model.signature is not None:
            expected[f"{entry_name}.signature"] = (entry.get("signature", self._model.signature), self._model.signature)
        for key, (recorded, actual) in expected.items():
            if recorded != actual:
                raise ManifestError(f"{self.model_path} does not match {where}: {key} is {actual}, the manifest records {recorded}")
        self.value_range = tuple(manifest["value_range"])
        self.version = manifest.get("version")
        self.digit_categories = manifest_digit_categories(manifest)

    @property
    def runtime(self):
        """What runs the file: onnxruntime or LiteRT."""
        return self._model.runtime

    def check_latents(self, latents):
        """float32 [n, latent_dim] of finite numbers, or InputError saying what is wrong."""
        latents = np.asarray(latents)
        if latents.dtype.kind not in "iuf":
            raise InputError(f"latent must hold numbers, got dtype {latents.dtype}")
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise InputError(f"latent must have shape [batch, {self.latent_dim}], got {list(latents.shape)}")
        latents = latents.astype(np.float32, copy=False)
        if not np.isfinite(latents).all():
            raise InputError("latent contains NaN or Inf")
        if latents.size and np.abs(latents).max() > LATENT_LIMIT:
            raise InputError(f"latent values must be within ±{LATENT_LIMIT:g} (latents are drawn from a standard normal), got {np.abs(latents).max():g}")
        return latents

    def generate(self, latents):
        """float32 images [n, *image_shape] in `value_range` for latents [n, latent_dim]."""
        latents = self.check_latents(latents)
        if latents.shape[0] == 0:
            return np.zeros((0, *self.image_shape), np.float32)
        return self.check_images(self.run_model(latents))

    def run_model(self, latents):
        """The model's raw output for latents that passed `check_latents`; a server merges several requests' rows into one call."""
        return self._model.run(latents)

    @staticmethod
    def check_images(images):
        """`images` when every value is finite, else InputError naming the rows that are not."""
        if not np.isfinite(images).all():
            # Finite latents far outside the training distribution (say 1e38) overflow inside the network.
            rows = np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(axis=1))
            raise InputError(
                f"the generator's output is not finite (NaN or Inf) for latent row(s) {rows[:10].tolist()}: "
                "use latents of ordinary size, e.g. standard normal values"
            )
        return images

    def latents_from_seeds(self, seeds):
        seeds = np.asarray(seeds)
        if seeds.ndim != 1 or (seeds.size and seeds.dtype.kind not in "iu"):
            raise InputError(f"seeds must be a list of integers, got {seeds.dtype} of shape {list(seeds.shape)}")
        try:
            return latents_from_seeds(seeds, self.latent_dim)
        except ValueError as error:
            raise InputError(str(error)) from error

    def generate_from_seeds(self, seeds):
        """Images for integer seeds in [0, 2**31 - 1]: seed N gives the same image on every back end."""
        return self.generate(self.latents_from_seeds(seeds))

    def generate_digits(self, seeds, digits):
        """Images of the asked digits, one per seed: seed N with digit D gives the same image on every back end."""
        return self.generate(self.digit_latents(seeds, digits))

    def digit_latents(self, seeds, digits):
        """The latents that draw digit D from seed N (`generate_digits` runs them)."""
        if not self.digit_categories:
            raise InputError(
                f"{self.model_path} takes no digits: its manifest has no 'digits' entry (export a run trained with code_labels)"
            )
        latents = self.latents_from_seeds(seeds)
        try:
            return latents_for_digits(latents, digits, self.digit_categories)
        except ValueError as error:
            raise InputError(str(error)) from error

    def png_bytes(self, images):
        """One PNG (bytes) per image."""
        return encode_pngs(images, self.value_range)

    def write_grid(self, path, images, columns=None):
        write_grid(path, images, self.value_range, columns)

    def write_pngs(self, folder, images, names):
        return write_pngs(folder, images, names, self.value_range)


def encode_pngs(images, value_range=VALUE_RANGE):
    return [image_grid.png_bytes(image) for image in image_grid.to_uint8(images, value_range)]


def write_grid(path, images, value_range=VALUE_RANGE, columns=None):
    """All images tiled into one PNG (written atomically)."""
    images = image_grid.to_uint8(images, value_range)
    image_grid.write_png(path, image_grid.tile(images, columns))


def write_pngs(folder, images, names, value_range=VALUE_RANGE):
    """One PNG per image as folder/NAME.png; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, image in zip(names, image_grid.to_uint8(images, value_range), strict=True):
        path = pathlib.Path(folder) / f"{name}.png"
        image_grid.write_png(path, image)
        paths.append(path)
    return paths
