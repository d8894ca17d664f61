"""The runtimes an exported generator file runs on, chosen by its suffix; TensorFlow-free.

    .onnx    onnxruntime (the base install)                 manifest entry "onnx"
    .tflite  LiteRT's interpreter (keras-dcgan[litert])     manifest entry "litert"

Each model exposes the same things, so one loading path (serving/session.py) checks both files
against the manifest: the input and output names, their shapes (None for the batch), and
`run(latents)`.
"""

import pathlib
import threading

from keras_dcgan.contract import LITERT_ENTRY, MODEL_FILE_ENTRIES, ONNX_ENTRY
from keras_dcgan.serving.litert_session import open_interpreter
from keras_dcgan.serving.onnx_session import open_session


class OnnxModel:
    kind = "ONNX"
    runtime = "onnxruntime"
    manifest_entry = ONNX_ENTRY

    def __init__(self, content, threads=None):
        self._session = open_session(content, threads)
        model_input, model_output = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self.input_name, self.output_name = model_input.name, model_output.name
        self.input_shape = [size if isinstance(size, int) else None for size in model_input.shape]
        self.output_shape = [size if isinstance(size, int) else None for size in model_output.shape]
        self.signature = None

    def run(self, latents):
        return self._session.run([self.output_name], {self.input_name: latents})[0]


class LiteRTModel:
    kind = "LiteRT"
    runtime = "LiteRT"
    manifest_entry = LITERT_ENTRY

    def __init__(self, content, threads=None):
        interpreter = open_interpreter(content, threads)
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"expected one signature, found {sorted(signatures) or 'none'}")
        (self.signature, names), = signatures.items()
        if len(names["inputs"]) != 1 or len(names["outputs"]) != 1:
            raise ValueError(f"signature {self.signature} has inputs {names['inputs']} and outputs {names['outputs']}, expected one of each")
        self._runner = interpreter.get_signature_runner(self.signature)
        (self.input_name, model_input), = self._runner.get_input_details().items()
        (self.output_name, model_output), = self._runner.get_output_details().items()
        self.input_shape = [int(size) if size >= 0 else None for size in model_input["shape_signature"]]
        self.output_shape = [int(size) if size >= 0 else None for size in model_output["shape_signature"]]
        self._lock = threading.Lock()  # an interpreter runs one call at a time; the runner resizes it per batch

    def run(self, latents):
        with self._lock:
            return self._runner(**{self.input_name: latents})[self.output_name]


RUNTIMES = {".onnx": OnnxModel, ".tflite": LiteRTModel}
# `serve --model-base-path --runtime NAME`: each name is the manifest entry of the file that runtime runs.
RUNTIME_NAMES = {model.manifest_entry: model for model in RUNTIMES.values()}
DEFAULT_RUNTIME = MODEL_FILE_ENTRIES[0]


def runtime_for(path):
    """The model class for `path`'s suffix, or ValueError naming the suffixes known."""
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in RUNTIMES:
        raise ValueError(f"{path}: expected an {' or '.join(RUNTIMES)} file")
    return RUNTIMES[suffix]
