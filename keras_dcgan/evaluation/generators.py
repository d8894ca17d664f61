"""One interface over the four things `evaluate` and the latent walk can read.

`open_generator(path, epoch=None, verify=True)` accepts
- a run dir: its final generator, or with `epoch` the generator of that epoch's checkpoint
  (`RunDir.load_generator`);
- an ONNX file (`latent` float32 [batch, latent_dim] -> `images` [batch, 28, 28, 1] in [0, 1]),
  an ONNX file or a LiteRT .tflite file of the same interface, opened by the serving side's
  `GeneratorSession` (onnxruntime or ai-edge-litert), so that `evaluate` and `latent-walk` check
  it against its manifest (size, SHA-256, shapes) as `generate` and `serve` do; `verify=False`
  (their --no-verify) runs a file without one, unchecked;
- a SavedModel folder (signature serving_default: `latent` -> `images` in [0, 1]).
Every one becomes a `Generator`: `generate(latents)` returns float32 images in [0, 1], and
`digit_categories` says whether it takes digits (keras_dcgan/digits.py): a run whose code
learnt the labels, or an export whose manifest records `digits`.
"""

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from keras_dcgan.contract import DEFAULT_SIGNATURE, MANIFEST_NAME, MODEL_FILE_SUFFIXES, MODEL_INPUT, MODEL_OUTPUT, SAVED_MODEL_FILE, ManifestError, manifest_digit_categories
from keras_dcgan.image_range import to_unit_range
from keras_dcgan.run_dir import CONFIG_FILE, RunDir
from keras_dcgan.serving.manifest import read_manifest



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


def open_generator(path, epoch=None, verify=True):
    path = os.fspath(path)
    run = RunDir(path)
    if os.path.isdir(path) and run.is_run():
        return _open_run(run, epoch)
    if epoch is not None:
        raise GeneratorSourceError(f"--epoch applies to run dirs only; {path} is not one (no {CONFIG_FILE})")
    if is_exported_file(path):
        return _open_onnx(path, verify)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return _open_saved_model(path)
    raise GeneratorSourceError(
        f"{path}: not a run dir (no {CONFIG_FILE}), an .onnx or .tflite file or a SavedModel folder (no {SAVED_MODEL_FILE})"
    )


def is_exported_file(path):
    """An exported file the serving side runs without TensorFlow (as opposed to a run dir or a SavedModel)."""
    path = os.fspath(path)
    return os.path.isfile(path) and path.endswith(MODEL_FILE_SUFFIXES)


def _open_run(run, epoch):
    loaded = run.load_generator(epoch)
    generator, config = loaded.generator, loaded.config
    if epoch is None:
        description = f"{run.path} ({loaded.checkpoint})"
    else:
        description = f"{run.path} (epoch {epoch}{', weight average' if config.generator_ema else ''})"

    def generate_batch(latents):
        return to_unit_range(np.asarray(generator(latents, training=False)))

    return Generator(description, config.latent_dim, generate_batch, {"dataset": config.dataset}, config.digit_categories)


def _recorded_data(manifest):
    """The training data an export's manifest records: {"dataset": its TFDS name}, or {}."""
    config = manifest.get("source", {}).get("config", {})  # the contract's schema checked both are objects
    return {"dataset": config["dataset"]} if isinstance(config.get("dataset"), str) else {}


def _manifest_data(folder):
    """(training data, digit categories) recorded in the manifest.json of a SavedModel folder, if there is one."""
    path = os.path.join(folder, MANIFEST_NAME)
    if not os.path.exists(path):
        return {}, 0
    try:
        manifest = read_manifest(path)
    except ManifestError as error:
        raise GeneratorSourceError(str(error)) from error
    return _recorded_data(manifest), manifest_digit_categories(manifest)


def _open_onnx(path, verify):
    from keras_dcgan.serving.session import GeneratorSession

    session = GeneratorSession(path, verify=verify)
    data = _recorded_data(session.manifest) if session.manifest else {}
    return Generator(f"{path} ({session.runtime})", session.latent_dim, session.generate, data, session.digit_categories)


def _open_saved_model(folder):
    import tensorflow as tf

    signatures = tf.saved_model.load(folder).signatures
    if DEFAULT_SIGNATURE not in signatures:
        raise GeneratorSourceError(f"{folder}: no {DEFAULT_SIGNATURE} signature (has {', '.join(signatures) or 'none'})")
    serve = signatures[DEFAULT_SIGNATURE]
    inputs = serve.structured_input_signature[1]
    if MODEL_INPUT.name not in inputs:
        raise GeneratorSourceError(f"{folder}: {DEFAULT_SIGNATURE} takes {', '.join(inputs)}, expected `{MODEL_INPUT.name}`")
    latent_dim = inputs[MODEL_INPUT.name].shape[1]
    # An export root holds <model>/<version>/ with manifest.json beside the version folders or in them.
    data, digit_categories = _manifest_data(folder)
    if not data:
        data, digit_categories = _manifest_data(os.path.dirname(os.path.abspath(folder)))

    def generate_batch(latents):
        return serve(**{MODEL_INPUT.name: tf.constant(latents)})[MODEL_OUTPUT.name].numpy()

    return Generator(f"{folder} (SavedModel)", latent_dim, generate_batch, data, digit_categories)
