"""The one way this project opens an onnxruntime session: CPU, quiet, threads as asked. onnxruntime only."""

import os

import onnxruntime


def open_session(model, threads=None):
    """An onnxruntime session of `model`, an ONNX file's path or its bytes.

    `threads` sets the intra-op threads (None: onnxruntime's default, all cores); 1 suits a
    server that runs requests in parallel. Only errors reach onnxruntime's log.
    """
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not isinstance(model, bytes):
        model = os.fspath(model)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
