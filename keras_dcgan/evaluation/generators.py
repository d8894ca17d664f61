"""One interface over the four things `evaluate` and the latent walk can read.

`open_generator(path, epoch=None)` accepts
- a run dir: its final generator, or with `epoch` the generator of that epoch's checkpoint
  (`RunDir.load_generator`);
- an ONNX file (`latent` float32 [batch, latent_dim] -> `images` [batch, 28, 28, 1] in [0, 1]),
  run by onnxruntime, or a LiteRT .tflite file of the same interface, run by ai-edge-litert;
- a SavedModel folder (signature serving_default: `latent` -> `images` in [0, 1]).
Every one becomes a `Generator`: `generate(latents)` returns float32 images in [0, 1], and
`digit_categories` says whether it takes digits (keras_dcgan/digits.py): a run whose code
learnt the labels, or an export whose manifest records `digits`.
"""

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from keras_dcgan.image_range import to_unit_range
from keras_dcgan.run_dir import CONFIG_FILE, RunDir
from keras_dcgan.serving.manifest import ManifestError, read_manifest

MANIFEST_FILE = "manifest.json"


class GeneratorSourceError(ValueError):
    """A path that is not a run dir, an ONNX file or a SavedModel, or one that cannot be read."""


@dataclass
class Generator:
    description: str
    latent_dim: int
    generate_batch: Callable  # float32 latents [n, latent_dim] -> float32 images [n, 28, 28, 1] in [0, 1]
    # The training data's TFDS name, when the source records it: {"dataset": ...}. Where its files
    # lie is a run option, not recorded: `evaluate --data-dir` says it.
    data: dict = field(default_factory=dict)
    digit_categories: int = 0  # 0: the generator takes no digits

    def generate(self, latents, batch_size=500):
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"latents must have shape [n, {self.latent_dim}], got {list(latents.shape)}")
        batches = [self.generate_batch(latents[start : start + batch_size]) for start in range(0, len(latents), batch_size)]
        images = np.concatenate([np.asarray(batch, dtype=np.float32) for batch in batches])
        if images.shape[1:] != (28, 28, 1):
            raise GeneratorSourceError(f"{self.description} returned images of shape {images.shape[1:]}, expected (28, 28, 1)")
        return images


def open_generator(path, epoch=None):
    path = os.fspath(path)
    run = RunDir(path)
    if os.path.isdir(path) and run.is_run():
        return _open_run(run, epoch)
    if epoch is not None:
        raise GeneratorSourceError(f"--epoch applies to run dirs only; {path} is not one (no {CONFIG_FILE})")
    if os.path.isfile(path) and path.endswith((".onnx", ".tflite")):
        return _open_model_file(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
        return _open_saved_model(path)
    raise GeneratorSourceError(
        f"{path}: not a run dir (no {CONFIG_FILE}), an .onnx or .tflite file or a SavedModel folder (no saved_model.pb)"
    )


def _open_run(run, epoch):
    loaded = run.load_generator(epoch)
    generator, config = loaded.generator, loaded.config
    if epoch is None:
        description = f"{run.path} ({loaded.checkpoint})"
    else:
        description = f"{run.path} (epoch {epoch}{', weight average' if config.generator_ema else ''})"

    def generate_batch(latents):
        return to_unit_range(np.asarray(generator(latents, training=False)))

    digit_categories = config.categorical_code if config.code_labels else 0
    return Generator(description, config.latent_dim, generate_batch, {"dataset": config.dataset}, digit_categories)


def _manifest_data(folder):
    """(training data, latent_dim, digit categories) recorded in an export's manifest.json, if there is one."""
    path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.exists(path):
        return {}, None, 0
    try:
        manifest = read_manifest(path)
    except ManifestError as error:
        raise GeneratorSourceError(str(error)) from error
    config = (manifest.get("source") or {}).get("config") or {}
    data = {"dataset": config["dataset"]} if "dataset" in config else {}
    return data, manifest.get("latent_dim"), int((manifest.get("digits") or {}).get("categories", 0))


def _open_model_file(path):
    """An ONNX (onnxruntime) or LiteRT (ai-edge-litert) file, run through serving/runtimes.py."""
    from keras_dcgan.serving.litert_session import MissingLiteRTError
    from keras_dcgan.serving.runtimes import runtime_for

    model_class = runtime_for(path)
    with open(path, "rb") as file:
        content = file.read()
    try:
        model = model_class(content)
    except MissingLiteRTError:
        raise
    except Exception as error:  # each runtime raises its own exception types for unreadable models
        raise GeneratorSourceError(f"{model_class.runtime} cannot load {path}: {error}") from error
    data, manifest_latent_dim, digit_categories = _manifest_data(os.path.dirname(os.path.abspath(path)))
    latent_dim = model.input_shape[1] if model.input_shape[1] is not None else manifest_latent_dim
    if not isinstance(latent_dim, int):
        raise GeneratorSourceError(f"{path}: latent size unknown (input shape {model.input_shape}, no manifest.json)")
    return Generator(f"{path} ({model_class.runtime})", latent_dim, model.run, data, digit_categories)


def _open_saved_model(folder):
    import tensorflow as tf

    signatures = tf.saved_model.load(folder).signatures
    if "serving_default" not in signatures:
        raise GeneratorSourceError(f"{folder}: no serving_default signature (has {', '.join(signatures) or 'none'})")
    serve = signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    if "latent" not in inputs:
        raise GeneratorSourceError(f"{folder}: serving_default takes {', '.join(inputs)}, expected `latent`")
    latent_dim = inputs["latent"].shape[1]
    # An export root holds <model>/<version>/ with manifest.json beside the version folders or in them.
    data, _, digit_categories = _manifest_data(folder)
    if not data:
        data, _, digit_categories = _manifest_data(os.path.dirname(os.path.abspath(folder)))

    def generate_batch(latents):
        return serve(latent=tf.constant(latents))["images"].numpy()

    return Generator(f"{folder} (SavedModel)", latent_dim, generate_batch, data, digit_categories)
