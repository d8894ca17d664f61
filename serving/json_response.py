"""Response bodies as JSON bytes, numpy arrays included: orjson when it is installed, else the standard library.

Why: a batch-1 answer holds 784 floats, and encoding them with the standard library is the
largest cost of a request. orjson writes
float32 arrays directly, in their shortest round-trip form, so a client that reads them back
as float32 gets exactly the server's values. Devices without orjson still work, just slower.
"""

import json

import numpy as np

try:
    import orjson
except ImportError:  # optional: the edge runtime needs only numpy, onnxruntime and Pillow
    orjson = None


def _to_builtin(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode(payload):
    """`payload` (dicts, lists, str, numbers, numpy arrays) as UTF-8 JSON bytes."""
    if orjson is not None:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(payload, default=_to_builtin).encode()
