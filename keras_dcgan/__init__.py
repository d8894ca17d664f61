"""keras-dcgan: a DCGAN on MNIST in Keras 3 under tf.distribute, exported for TF Serving and ONNX.

This file imports nothing heavy: `keras_dcgan.serving` must import on a device that has
numpy and onnxruntime but no TensorFlow.
"""

__version__ = "0.1.0"
