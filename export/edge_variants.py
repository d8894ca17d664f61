"""Smaller ONNX files for edge devices, written beside `generator.onnx` on request (`--edge-variants`).

    generator.float16.onnx  weights and arithmetic in float16, float32 input and output
                            (onnxconverter-common), half the size
    generator.int8.onnx     dynamic int8 quantisation (onnxruntime.quantization) of the Dense
                            layer's MatMul, which holds ~3/4 of the default generator's weights:
                            int8 weights, activations quantised per call. The convolutions stay
                            float32: onnxruntime's dynamic int8 convolution (ConvInteger) ran the
                            default generator ~8x slower than float32 on x86 (docs/export.md)

Same input and output names as the float32 file. Each variant's size and its difference to the
float32 file on the parity latents are recorded in the manifest; docs/export.md has the speed
and the visual judgement.
"""

import contextlib
import logging
import os
import warnings

import numpy as np
import onnx

from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.runtimes import runtime_for

CODE_LAYER_NAME = "categorical_code"  # the layer's name in keras_dcgan.networks, kept in ONNX node names
FLOAT16_FILE = "generator.float16.onnx"
INT8_FILE = "generator.int8.onnx"


def write_float16(float32_path, path):
    from onnxconverter_common import float16

    model = onnx.load(float32_path)
    with warnings.catch_warnings():  # it warns for every weight below float16's range that it flushes: expected
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=_categorical_code_nodes(model)
        )
    onnx.checker.check_model(converted, full_check=True)
    onnx.save_model(converted, path)


def _categorical_code_nodes(model):
    """The nodes that pick the categorical code (keras_dcgan/categorical_code.py) stay float32.

    In float16 about 1 latent in 2,700 has two of its first 10 values round to the same number,
    and the code, hence the digit drawn, would differ from every other back end's.
    """
    return [node.name for node in model.graph.node if CODE_LAYER_NAME in node.name and node.op_type in ("Slice", "ArgMax")]


def write_int8(float32_path, path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():  # it advises pre-processing on every call; measured: no change for this graph
        quantize_dynamic(float32_path, path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    onnx.checker.check_model(onnx.load(path), full_check=True)


WRITERS = {"float16": (FLOAT16_FILE, write_float16), "int8": (INT8_FILE, write_int8)}


def write_edge_variants(folder, float32_file, latent_dim, sample_count=64):
    """Write every ONNX variant into `folder`; returns `describe_variants` of them."""
    float32_path = os.path.join(folder, float32_file)
    for file_name, write in WRITERS.values():
        write(float32_path, os.path.join(folder, file_name))
    files = {variant: file_name for variant, (file_name, _) in WRITERS.items()}
    return describe_variants(folder, float32_file, files, latent_dim, sample_count)


def describe_variants(folder, float32_file, files, latent_dim, sample_count=64):
    """{variant: {"file", "bytes", "max_abs_difference", "mean_abs_difference"}} for {variant: file} in `folder`.

    Differences are to the float32 file of the same format (ONNX or LiteRT), on the latents of
    seeds 0..sample_count-1, in [0, 1] units.
    """
    latents = latents_from_seeds(np.arange(sample_count), latent_dim)
    reference = _run(os.path.join(folder, float32_file), latents)
    described = {}
    for variant, file_name in files.items():
        path = os.path.join(folder, file_name)
        difference = np.abs(_run(path, latents).astype(np.float64) - reference)
        described[variant] = {
            "file": file_name,
            "bytes": os.path.getsize(path),
            "max_abs_difference": float(difference.max()),
            "mean_abs_difference": float(difference.mean()),
        }
    return described


def _run(path, latents):
    with open(path, "rb") as file:
        return runtime_for(path)(file.read()).run(latents)


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
