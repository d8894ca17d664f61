"""The generator as ONNX for onnxruntime: `latent` float32 [batch, latent_dim] -> `images` float32 [batch, 28, 28, 1] in [0, 1].

Converted with tf2onnx from a tf.function (its `from_keras` fails on Keras 3 models), at the
highest opset tf2onnx supports, capped at 18. BatchNorm is in inference mode and folds into
Mul/Add, so no image depends on the rest of its batch. The batch axis is named "batch".
"""

import onnx
import tensorflow as tf
import tf2onnx

from keras_dcgan.contract import MODEL_INPUT, MODEL_OUTPUT
from keras_dcgan.image_range import to_unit_range

BATCH_AXIS = "batch"
MAX_OPSET = 18


def highest_opset():
    return min(MAX_OPSET, max(tf2onnx.constants.OPSET_TO_IR_VERSION))


def export_onnx(generator, latent_dim, path):
    """Write the ONNX file, checked with onnx.checker; returns the opset used."""
    opset = highest_opset()
    signature = [tf.TensorSpec([None, latent_dim], tf.float32, name=MODEL_INPUT.name)]

    @tf.function(input_signature=signature)
    def images(latent):
        return to_unit_range(generator(latent, training=False))

    model, _ = tf2onnx.convert.from_function(images, input_signature=signature, opset=opset)
    _name_interface(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, path)
    return opset


def _name_interface(model):
    """tf2onnx names the output after a TensorFlow tensor ("Identity:0") and the batch axes "unk__N": use the contract's names."""
    graph = model.graph
    if len(graph.output) != 1 or [value.name for value in graph.input] != [MODEL_INPUT.name]:
        raise RuntimeError(f"tf2onnx made inputs {[v.name for v in graph.input]}, outputs {[v.name for v in graph.output]}")
    old_output = graph.output[0].name
    for node in graph.node:
        node.output[:] = [MODEL_OUTPUT.name if name == old_output else name for name in node.output]
    graph.output[0].name = MODEL_OUTPUT.name
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_AXIS
