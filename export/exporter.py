"""`export_generator`: one run's generator -> `<export_root>/<name>/<version>/` with SavedModel, ONNX and manifest.

    <export_root>/<name>/<version>/
        saved_model.pb, variables/, fingerprint.pb, assets/   TF Serving (see saved_model.py)
        generator.onnx                                        onnxruntime (see onnx_export.py)
        generator.tflite                                      LiteRT (see litert_export.py)
        manifest.json                                         what is in the folder (see manifest.py), and
                                                              for a generator that takes digits, how well (digit_input.py)

TF Serving ignores the extra files in a version folder. The folder appears all at once,
after parity checks passed (see version_folder.py); a failed export leaves nothing behind.
"""

import os
from dataclasses import dataclass

import tensorflow as tf

from keras_dcgan.contract import LITERT_FILE, MANIFEST_NAME, MODEL_INPUT, MODEL_OUTPUT, ONNX_FILE
from keras_dcgan.data import IMAGE_SHAPE
from keras_dcgan.export import version_folder
from keras_dcgan.export.digit_input import DEFAULT_DIGIT_SAMPLES, describe_digits
from keras_dcgan.export.edge_variants import describe_variants, write_edge_variants
from keras_dcgan.export.errors import ExportError
from keras_dcgan.export.generator_source import load_generator_source, recorded_quality
from keras_dcgan.export.litert_export import export_litert
from keras_dcgan.export.manifest import build_manifest, write_manifest
from keras_dcgan.export.onnx_export import export_onnx
from keras_dcgan.export.parity import measure_parity
from keras_dcgan.export.saved_model import describe_signatures, save_saved_model


@dataclass(frozen=True)
class ExportResult:
    version_dir: str  # the SavedModel folder TF Serving loads; also holds the ONNX file and the manifest
    version: int
    onnx_path: str
    manifest_path: str
    manifest: dict


def export_generator(
    run_dir, export_root, name="dcgan", version=None, epoch=None, edge_variants=False, data_dir=None, cache_dir=None,
    digit_samples=DEFAULT_DIGIT_SAMPLES,
):
    """Export the final generator of `run_dir` (or the one saved at the end of `epoch`).

    `version=None` takes the next free version. `edge_variants=True` adds the float16 and
    dynamic-int8 ONNX files of edge_variants.py (recorded under manifest["onnx_variants"]) and
    the dynamic-range LiteRT file of litert_export.py (manifest["litert_variants"]).
    `data_dir` (IDX files; None: TFDS) and `cache_dir` serve to score a digit input, if any,
    on `digit_samples` seeded latents.
    Raises ExportError (a ValueError) for a run dir without a generator, a corrupt checkpoint,
    an unwritable export root, an existing version, or outputs that differ from the Keras
    generator by more than the parity tolerance (ParityError).
    """
    version_folder.check_model_name(name)
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        raise ExportError(f"epoch must be an integer, got {epoch!r}")
    if isinstance(digit_samples, bool) or not isinstance(digit_samples, int) or digit_samples < 1:
        raise ExportError(f"digit_samples must be a positive integer, got {digit_samples!r}")
    base_path = os.path.join(os.path.abspath(export_root), name)
    version = version_folder.choose_version(base_path, version)  # refuse an existing version before slow work
    source = load_generator_source(run_dir, epoch)  # before any folder is made: a bad run dir leaves nothing
    categories = source.config.digit_categories
    if digit_samples < categories:  # every digit is asked for at least once
        raise ExportError(f"digit_samples must be at least the {categories} digits the generator takes, got {digit_samples}")

    with version_folder.staged_version_folder(base_path, version) as staging:
        save_saved_model(source.generator, source.latent_dim, staging, categories)
        opset = export_onnx(source.generator, source.latent_dim, os.path.join(staging, ONNX_FILE))
        litert, litert_variant_files = export_litert(source.generator, source.latent_dim, staging, quantised_variant=edge_variants)
        saved_model = tf.saved_model.load(staging)
        parity = measure_parity(
            source.generator, source.latent_dim, saved_model, os.path.join(staging, ONNX_FILE), digit_categories=categories,
            litert_path=os.path.join(staging, LITERT_FILE),
        )
        variants = write_edge_variants(staging, ONNX_FILE, source.latent_dim) if edge_variants else None
        litert_variants = describe_variants(staging, LITERT_FILE, litert_variant_files, source.latent_dim) if edge_variants else None
        manifest = build_manifest(
            model_name=name,
            version=version,
            latent_dim=source.latent_dim,
            image_shape=IMAGE_SHAPE,
            onnx={"file": ONNX_FILE, "opset": opset, "input": MODEL_INPUT.name, "output": MODEL_OUTPUT.name},
            litert=litert,
            signatures=describe_signatures(saved_model),
            folder=staging,
            source={
                "run_dir": source.run_dir,
                "checkpoint": source.checkpoint,
                "epoch": source.epoch,
                "step": source.step,
                "config": source.config.to_dict(),
            },
            parity=parity,
            quality=recorded_quality(source.run_dir, source.epoch),
            variants=variants,
            litert_variants=litert_variants,
            digits=describe_digits(source, data_dir, cache_dir, digit_samples),
        )
        write_manifest(staging, manifest)

    version_dir = os.path.join(base_path, str(version))
    return ExportResult(
        version_dir=version_dir,
        version=version,
        onnx_path=os.path.join(version_dir, ONNX_FILE),
        manifest_path=os.path.join(version_dir, MANIFEST_NAME),
        manifest=manifest,
    )
