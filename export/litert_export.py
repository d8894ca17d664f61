"""The generator as LiteRT (TensorFlow Lite) files: signature `serving_default`, `latent` float32 [batch, latent_dim] -> `images` [batch, 28, 28, 1] in [0, 1].

    generator.tflite               float32, from the same float32 generator as generator.onnx
    generator.dynamic_int8.tflite  (--edge-variants) dynamic-range quantisation: int8 weights,
                                   float32 activations (docs/export.md has its size, speed and quality)

Builtin operators only (no Flex / SELECT_TF_OPS ops): the TensorFlow-free interpreter
(`ai-edge-litert`) runs builtins only. The batch dimension stays dynamic; the runtime resizes
the input to each call's batch.

Why the upsampling gets a reshape: Keras' nearest-neighbour UpSampling2D is Tile + Reshape, and
with an unknown batch that reshape leaves the feature map's height unknown too; LiteRT's native
Conv2D then refuses it ("neither a custom op nor a flex op"). The generator is therefore traced
layer by layer with a reshape to the layer's own static output shape after each UpSampling2D: a
reshape to the shape the values already have changes no number, and neither the Keras model nor
the ONNX export is touched (a file converted at a fixed batch instead does not survive
`resize_tensor_input`: XNNPACK refuses to reshape its baked-in Reshape shapes).
"""

import os
import tempfile

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_dcgan.contract import DEFAULT_SIGNATURE, LITERT_FILE, MODEL_INPUT, MODEL_OUTPUT
from keras_dcgan.data import IMAGE_SHAPE
from keras_dcgan.export.errors import ExportError
from keras_dcgan.image_range import to_unit_range
from keras_dcgan.serving.litert_session import open_interpreter

DYNAMIC_INT8_FILE = "generator.dynamic_int8.tflite"


def export_litert(generator, latent_dim, folder, quantised_variant=False):
    """Write generator.tflite (and the dynamic-range variant) into `folder`.

    Returns (the manifest's `litert` entry, {variant: file name} of the variants written).
    Raises ExportError if a file would need a Flex op.
    """
    with tempfile.TemporaryDirectory() as frozen_dir:
        save_frozen(generator, latent_dim, frozen_dir)
        _convert(frozen_dir, os.path.join(folder, LITERT_FILE))
        variants = {}
        if quantised_variant:
            _convert(frozen_dir, os.path.join(folder, DYNAMIC_INT8_FILE), optimizations=[tf.lite.Optimize.DEFAULT])
            variants["dynamic_int8"] = DYNAMIC_INT8_FILE
    entry = {
        "file": LITERT_FILE,
        "signature": DEFAULT_SIGNATURE,
        "input": MODEL_INPUT.name,
        "output": MODEL_OUTPUT.name,
        "input_shape": [None, latent_dim],
        "output_shape": [None, *IMAGE_SHAPE],
        "operators": sorted(operator_names(os.path.join(folder, LITERT_FILE))),
    }
    return entry, variants


def save_frozen(generator, latent_dim, directory):
    """A SavedModel of the generator with its weights as constants, for the converter.

    The converter keeps the variables of a SavedModel of the live Keras model as resource
    variables (VAR_HANDLE / READ_VARIABLE ops) that the interpreter leaves uninitialised, so the
    function is frozen first.
    """
    spec = [tf.TensorSpec([None, latent_dim], tf.float32, name=MODEL_INPUT.name)]
    traced = tf.function(lambda latent: {MODEL_OUTPUT.name: _static_shape_images(generator, latent)}, input_signature=spec)
    frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
    module = tf.Module()
    module.images = tf.function(lambda latent: {MODEL_OUTPUT.name: frozen(latent)[0]}, input_signature=spec)
    tf.saved_model.save(module, directory, signatures={DEFAULT_SIGNATURE: module.images})


def _static_shape_images(generator, latent):
    """The generator's images in [0, 1], each UpSampling2D output reshaped to its static height and width (module docstring)."""
    values = latent
    for layer in generator.layers:
        incoming = values.shape
        values = layer(values, training=False)
        if isinstance(layer, keras.layers.UpSampling2D):
            values = tf.reshape(values, [-1, *layer.compute_output_shape(incoming)[1:]])
    return to_unit_range(values)


def _convert(saved_model_dir, path, optimizations=()):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[DEFAULT_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops: see the module docstring
    converter.optimizations = list(optimizations)
    try:
        content = converter.convert()
    except Exception as error:  # the converter raises its own ConverterError for ops it cannot map
        raise ExportError(f"the generator cannot be converted to LiteRT with builtin operators only: {error}") from error
    flex = sorted(name for name in operator_names(content) if name.startswith("Flex"))
    if flex:
        raise ExportError(f"{os.path.basename(path)} would need Flex (TensorFlow) ops, which ai-edge-litert cannot run: {', '.join(flex)}")
    with open(path, "wb") as file:
        file.write(content)


def operator_names(model):
    """The operator names (e.g. CONV_2D; Flex ops start with "Flex") of a .tflite file's path or bytes."""
    if not isinstance(model, bytes):
        with open(model, "rb") as file:
            model = file.read()
    return {operator["op_name"] for operator in open_interpreter(model)._get_ops_details()}
