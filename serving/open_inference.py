"""The Open Inference Protocol (KServe's v2 data plane) over the generator, beside TF Serving's REST API.

The HTTP/REST binding of the protocol, as Triton, MLServer and KServe's model server answer it,
so that their clients (`tritonclient.http` among them) work against `keras-dcgan serve`:

    GET  /v2                                       server metadata: name, version, extensions
    GET  /v2/health/live                           200 while the process serves
    GET  /v2/health/ready                          200 when ready, else 503 (health.py says when)
    GET  /v2/models/NAME[/versions/V]              model metadata: its inputs and output
    GET  /v2/models/NAME[/versions/V]/ready        200 when ready, else 503
    POST /v2/models/NAME[/versions/V]/infer        FP32 latent [batch, latent_dim], or INT64 seeds [batch]
                                                   (and INT64 digits [batch] for a model that takes digits)
                                                   -> FP32 images [batch, H, W, C]

Tensor data comes as JSON (`data`, flat in row-major order or nested) or, with the binary
tensor data extension, as raw little-endian bytes after the JSON header: the request's
`Inference-Header-Content-Length` header gives the JSON's length and each binary input its
`binary_data_size` parameter. The output comes back the same way when asked (`binary_data` on
it, or `binary_data_output` on the request), which is tritonclient's default.
Errors are `{"error": "..."}`: 400 for a bad request, 404 for an unknown model, version or route,
405 for a wrong method. Inputs go through the checks of the TF Serving API (the same batch cap,
`GeneratorSession.check_latents`, seeds and digits), and infers share model calls with its
predicts (the server's `ModelBatcher` takes both).
"""

import math
import re
import time
import urllib.parse
from dataclasses import dataclass

import numpy as np

from keras_dcgan import __version__
from keras_dcgan.contract import DIGITS, IMAGES, LATENT, SEEDS
from keras_dcgan.serving import json_codec
from keras_dcgan.serving.model_repository import ServableNotFound
from keras_dcgan.serving.rest_api import ApiError, PendingPrediction, _parse_json, _to_array
from keras_dcgan.serving.runtimes import LiteRTModel, OnnxModel
from keras_dcgan.serving.session import InputError

SERVER_NAME = "keras-dcgan"
EXTENSIONS = ["binary_tensor_data"]
# A model's platform by the runtime that runs it (GeneratorSession.runtime): Triton's name for onnxruntime
# models, and for LiteRT a name of the same <runtime>_<format> form, as Triton has no LiteRT platform.
PLATFORMS = {OnnxModel.runtime: "onnxruntime_onnx", LiteRTModel.runtime: "litert_tflite"}
HEADER_LENGTH = b"inference-header-content-length"
OUTPUT_NAME = IMAGES.name
LATENT_NAME, SEEDS_NAME, DIGITS_NAME = LATENT.name, SEEDS.name, DIGITS.name
DATATYPES = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8")}
MAX_RANK = 8
MAX_VERSION_DIGITS = 18  # int64's
MODEL_ROUTE = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?")
INFER_LABEL = "v2/infer"  # the metrics' signature label of infers
ROUTES_HINT = "/v2, /v2/health/live, /v2/health/ready, /v2/models/NAME[/versions/V][/ready | /infer]"


def handles(path):
    """Whether `path` (the request target) belongs to this protocol rather than to TF Serving's API."""
    return path == "/v2" or path.startswith("/v2/")


class MethodNotAllowed(ApiError):
    """405, with the method the route takes (for the Allow header)."""

    def __init__(self, method, allowed):
        super().__init__(405, f"method {method} is not allowed here; use {allowed}")
        self.allowed = allowed if allowed == "POST" else "GET, HEAD"


@dataclass(frozen=True)
class PendingInfer:
    """An infer request that passed every check; `prediction` waits for a model call (the batcher's item)."""

    prediction: PendingPrediction  # holds the lease on the version that answers it
    model_name: str
    request_id: object  # the request's "id", echoed back; None when it had none
    binary_output: bool


class OpenInferenceApi:
    """The v2 routes over `api` (a `rest_api.PredictionApi`: its model versions, batch cap and metrics) and `health`."""

    def __init__(self, api, health):
        self.api = api
        self.health = health

    def lease(self, name, version):
        """The Lease on model `name` at `version` (None: its latest), or None when this server has no such version available.

        The one place the v2 routes look a model up: the TF Serving API's repository of versions.
        """
        try:
            return self.api.models.lease(name, version)
        except ServableNotFound:
            return None

    def begin(self, method, path, headers, body):
        """(status, headers, body) for a request the model is not needed for, else a PendingInfer.

        `path` is the request target as sent, `headers` the ASGI list of (lower-case name, value) pairs.
        """
        started = time.perf_counter()
        path = path.split("?", 1)[0]
        try:
            answer = self._route(method, path, dict(headers), body, started)
        except MethodNotAllowed as error:
            answer = error.status, {"error": error.message}, [(b"allow", error.allowed.encode())]
        except ApiError as error:
            answer = error.status, {"error": error.message}
        if isinstance(answer, PendingInfer):
            return answer
        return self._respond(_route_label(path), started, *answer)

    def finish(self, pending, images):
        """(status, headers, body) of an infer from its own rows of the model's output."""
        prediction = pending.prediction
        lease = prediction.lease
        try:
            images = lease.session.check_images(images)
        except InputError as error:
            return self._respond(INFER_LABEL, prediction.started, 400, {"error": str(error)})
        finally:
            lease.release()
        images = np.ascontiguousarray(images, dtype=DATATYPES["FP32"])
        output = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(images.shape)}
        header = {"model_name": pending.model_name, "model_version": str(lease.version), "outputs": [output]}
        if pending.request_id is not None:
            header["id"] = pending.request_id
        if not pending.binary_output:
            output["data"] = images.reshape(-1)
            return self._respond(INFER_LABEL, prediction.started, 200, header)
        data = images.tobytes()
        output["parameters"] = {"binary_data_size": len(data)}
        head = json_codec.encode(header)
        self._observe(INFER_LABEL, prediction.started, 200)
        return 200, _headers(b"application/octet-stream", len(head) + len(data), [(HEADER_LENGTH, str(len(head)).encode())]), head + data

    def _respond(self, route, started, status, payload, extra_headers=()):
        self._observe(route, started, status)
        body = json_codec.encode(payload)
        return status, _headers(b"application/json", len(body), extra_headers), body

    def _observe(self, route, started, status):
        if self.api.metrics is not None:
            self.api.metrics.observe(route, status, time.perf_counter() - started)

    def _route(self, method, path, headers, body, started):
        """(status, payload) or a PendingInfer; ApiError for a client mistake."""
        if path == "/v2":
            _allow(method, "GET")
            return (200, {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})
        if path == "/v2/health/live":
            _allow(method, "GET")
            return (200, {"live": True})
        if path == "/v2/health/ready":
            _allow(method, "GET")
            return self._readiness({"ready": True})
        match = MODEL_ROUTE.fullmatch(path)
        if match is None:
            raise ApiError(404, f"Not found: {path} (this server's Open Inference Protocol routes: {ROUTES_HINT})")
        action = match["action"]
        _allow(method, "POST" if action == "/infer" else "GET")
        name, lease = self._lease(match)
        if action == "/infer":
            try:
                return self._infer(name, lease, headers, body, started)
            except BaseException:
                lease.release()
                raise
        with lease:
            if action == "/ready":
                return self._readiness({"name": name, "ready": True})
            return (200, self._metadata(name, lease))

    def _readiness(self, ready_payload):
        reason = self.health.not_ready_reason()
        if reason is None and self.api.models.latest_version() is None:
            reason = "no version of the model is available"
        if reason is None:
            return 200, ready_payload
        return 503, {"error": f"not ready: {reason}"}  # 503, as KServe's model server answers; Triton answers 400 with no body

    def _lease(self, match):
        """(model name, Lease) of the model a /v2/models route names; ApiError when there is no such version."""
        name = urllib.parse.unquote(match["name"])
        version = match["version"]
        if version is not None:
            if not (version.isascii() and version.isdigit()):
                raise ApiError(400, f"the model version in the path must be a positive integer, got {urllib.parse.unquote(version)!r}")
            # A number longer than any version a folder could hold is not one: no int() of thousands of digits.
            version = int(version) if len(version) <= MAX_VERSION_DIGITS else None
        lease = None if version is None and match["version"] is not None else self.lease(name, version)
        if lease is None:
            which = f"{name!r}" if match["version"] is None else f"{name!r} version {match['version'][:40]}"
            raise ApiError(404, f"Request for unknown model: {which} is not found")
        return name, lease

    def _input_specs(self, session):
        """name -> (datatype, shape) of every input the model takes (inputs are alternatives: latent, or seeds [and digits])."""
        specs = {LATENT_NAME: ("FP32", [-1, session.latent_dim]), SEEDS_NAME: ("INT64", [-1])}
        if session.digit_categories:
            specs[DIGITS_NAME] = ("INT64", [-1])
        return specs

    def _metadata(self, name, lease):
        return {
            "name": name,
            "versions": [str(version) for version in self.api.models.available_versions()],
            "platform": PLATFORMS[lease.session.runtime],
            "inputs": [_tensor(input_name, *spec) for input_name, spec in self._input_specs(lease.session).items()],
            "outputs": [_tensor(OUTPUT_NAME, "FP32", [-1, *lease.session.image_shape])],
        }

    def _infer(self, name, lease, headers, body, started):
        json_part, binary = _split_body(headers, body)
        request = _parse_json(json_part)
        parameters = _parameters(request, "the request")
        request_id = request.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise ApiError(400, f'"id" must be a string, got {type(request_id).__name__}')
        tensors = self._read_inputs(request.get("inputs"), binary, self._input_specs(lease.session))
        binary_output = _binary_output(request.get("outputs"), _flag(parameters, "binary_data_output", "the request"))
        try:
            latents = lease.session.check_latents(self._latents(lease.session, tensors))
        except InputError as error:
            raise ApiError(400, str(error)) from error
        prediction = PendingPrediction(INFER_LABEL, latents, row_format=False, started=started, lease=lease)
        return PendingInfer(prediction, name, request_id, binary_output)

    def _read_inputs(self, inputs, binary, specs):
        """name -> numpy array of each input tensor, from its JSON data or its slice of the binary part."""
        if not isinstance(inputs, list) or not inputs:
            raise ApiError(400, '"inputs" must be a non-empty list of tensors, each {"name", "shape", "datatype", "data"}')
        tensors, offset = {}, 0
        for tensor in inputs:
            if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
                raise ApiError(400, 'every entry of "inputs" must be an object with a string "name"')
            name = tensor["name"]
            if name not in specs:
                raise ApiError(400, f"unknown input {name!r}: this model takes {_alternatives(specs)}")
            if name in tensors:
                raise ApiError(400, f"input {name!r} is given twice")
            datatype = specs[name][0]
            if tensor.get("datatype") != datatype:
                raise ApiError(400, f"input {name!r} must have datatype {datatype}, got {tensor.get('datatype')!r}")
            shape = _shape(tensor.get("shape"), name)
            size = _binary_data_size(_parameters(tensor, f"input {name!r}"), name)
            if size is None:
                if "data" not in tensor:
                    raise ApiError(400, f'input {name!r} has neither "data" nor a "binary_data_size" parameter')
                tensors[name] = _from_json(tensor["data"], datatype, shape, name)
                continue
            if "data" in tensor:
                raise ApiError(400, f'input {name!r} has both "data" and a "binary_data_size" parameter: give one')
            if offset + size > len(binary):
                raise ApiError(400, f"input {name!r} declares {size} bytes of binary data, but only {len(binary) - offset} remain in the body")
            tensors[name] = _from_bytes(binary[offset : offset + size], datatype, shape, name)
            offset += size
        if offset != len(binary):
            raise ApiError(400, f"the body has {len(binary) - offset} bytes of binary data beyond what the inputs' binary_data_size declare")
        return tensors

    def _latents(self, session, tensors):
        names = set(tensors)
        batches = {name: array.shape[0] if array.ndim else 0 for name, array in tensors.items()}
        for name, batch in batches.items():
            if batch == 0:
                raise ApiError(400, f"input {name!r} must be a non-empty batch")
            if batch > self.api.max_batch:
                raise ApiError(400, f"batch of {batch} exceeds this server's limit of {self.api.max_batch} per request")
        if names == {LATENT_NAME}:
            return tensors[LATENT_NAME]
        if names == {SEEDS_NAME}:
            return session.latents_from_seeds(tensors[SEEDS_NAME])
        if names == {SEEDS_NAME, DIGITS_NAME}:
            if tensors[DIGITS_NAME].shape != tensors[SEEDS_NAME].shape:
                raise ApiError(400, f"digits must have the shape of seeds, {list(tensors['seeds'].shape)}; got {list(tensors['digits'].shape)}")
            return session.digit_latents(tensors[SEEDS_NAME], tensors[DIGITS_NAME])
        raise ApiError(400, f"give {_alternatives(self._input_specs(session))}; got {', '.join(sorted(names))}")


def _tensor(name, datatype, shape):
    return {"name": name, "datatype": datatype, "shape": shape}


def _route_label(path):
    """The metrics' `signature` label of a v2 request: its route, as v1 requests are labelled by theirs."""
    if path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        return "v2/server_metadata" if path == "/v2" else "v2/health"
    match = MODEL_ROUTE.fullmatch(path)
    if match is None:
        return ""
    return {"/ready": "v2/model_ready", "/infer": INFER_LABEL, None: "v2/model_metadata"}[match["action"]]


def _alternatives(specs):
    digits = f', or "{SEEDS_NAME}" and "{DIGITS_NAME}"' if DIGITS_NAME in specs else ""
    return f'"{LATENT_NAME}" [batch, {specs[LATENT_NAME][1][1]}] (FP32), or "{SEEDS_NAME}" [batch] (INT64){digits}'


def _allow(method, allowed):
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        raise MethodNotAllowed(method, allowed)


def _headers(content_type, length, extra=()):
    return [(b"content-type", content_type), (b"content-length", str(length).encode()), *extra]


def _split_body(headers, body):
    """(JSON part, binary part) of an infer body, split where Inference-Header-Content-Length says."""
    declared = headers.get(HEADER_LENGTH)
    if declared is None:
        return body, b""
    if not declared.isdigit() or int(declared) > len(body):
        raise ApiError(
            400, f"Inference-Header-Content-Length must be a whole number of bytes up to the body's {len(body)}, got {declared.decode('latin-1')!r}"
        )
    return body[: int(declared)], body[int(declared) :]


def _parameters(holder, what):
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ApiError(400, f'"parameters" of {what} must be an object, got {type(parameters).__name__}')
    return parameters


def _flag(parameters, key, what, default=False):
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(400, f'parameter "{key}" of {what} must be true or false, got {value!r}')
    return value


def _binary_data_size(parameters, name):
    """An input's binary_data_size (None when its data is JSON)."""
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ApiError(400, f'parameter "binary_data_size" of input {name!r} must be a whole number of bytes, got {size!r}')
    return size


def _binary_output(outputs, default):
    """Whether the images go back as binary data: the output's own "binary_data", else the request's default."""
    if outputs is None:
        return default
    if not isinstance(outputs, list) or not all(isinstance(output, dict) for output in outputs):
        raise ApiError(400, f'"outputs" must be a list of objects, each {{"name": "{OUTPUT_NAME}"}} with optional "parameters"')
    binary = default
    for output in outputs:
        if output.get("name") != OUTPUT_NAME:
            raise ApiError(400, f'unknown output {output.get("name")!r}: this model has one output, "{OUTPUT_NAME}"')
        binary = _flag(_parameters(output, f'output "{OUTPUT_NAME}"'), "binary_data", f'output "{OUTPUT_NAME}"', default)
    return binary


def _shape(shape, name):
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape):
        raise ApiError(400, f'"shape" of input {name!r} must be a list of at most {MAX_RANK} whole numbers, got {shape!r}'[:300])
    return shape


def _from_json(data, datatype, shape, name):
    if not isinstance(data, list):
        raise ApiError(400, f'"data" of input {name!r} must be a list, got {type(data).__name__}')
    array = _to_array(data, name).reshape(-1) if data else np.zeros(0, DATATYPES[datatype])
    if array.size != math.prod(shape):
        raise ApiError(400, f"input {name!r} has {array.size} values; its shape {shape} holds {math.prod(shape)}")
    if datatype == "INT64" and array.dtype.kind not in "iu":
        raise ApiError(400, f"input {name!r} has datatype INT64 but holds non-integers")
    if datatype == "INT64" and array.dtype.kind == "u" and array.max(initial=0) > np.iinfo(np.int64).max:
        raise ApiError(400, f"input {name!r} holds integers beyond INT64")
    with np.errstate(over="ignore"):  # a value beyond FP32's range becomes infinite, which check_latents refuses
        return array.astype(DATATYPES[datatype]).reshape(shape)


def _from_bytes(data, datatype, shape, name):
    dtype = DATATYPES[datatype]
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise ApiError(
            400, f"input {name!r} has {len(data)} bytes of binary data; its shape {shape} of {datatype} takes {math.prod(shape) * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype).reshape(shape)
