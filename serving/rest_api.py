"""TensorFlow Serving's REST API over a GeneratorSession, independent of any HTTP library.

`PredictionApi.respond(method, path, body)` returns `(status, payload)` for the routes TF
Serving answers, with the same JSON shapes and status codes, so one client and the same curl
lines work against `tensorflow_model_server` and `keras-dcgan serve`:

    GET  /v1/models/NAME[/versions/N | /labels/L]            model status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   signatures, names, dtypes, shapes
    POST /v1/models/NAME[/versions/N | /labels/L]:predict    {"instances": ...} -> {"predictions": ...}
                                                             {"inputs": ...}    -> {"outputs": ...}

As in TF Serving's handler: paths match case-insensitively, the model name is URL-decoded,
`/versions/01` is version 1, a `/v1/` path that matches no route or comes with another method
is 400 "Malformed request", and a predict body is parsed before the model is looked up.
A server that merges concurrent predictions into one model call uses the two halves of
`respond`: `begin` parses and checks a request (a bad one never reaches the model) and returns
either its answer or a `PendingPrediction`; `run_model` runs the latents of any number of those
in one model call, and `finish` answers each from its own rows (`complete` does both).
Signatures (those of the exported SavedModel): `serving_default` (latent -> images),
`generate_png` (latent -> png_bytes, sent as {"b64": ...}) and `generate_from_seeds`
(seeds -> images), and for an export that takes digits `generate_digits` (seeds and digits ->
images; keras_dcgan/digits.py). Every client mistake is an ApiError with a 4xx status and a message.
docs/rest-server.md lists where this server deliberately differs (batch cap, non-finite values).
"""

import base64
import re
import time
import urllib.parse
from dataclasses import dataclass

import numpy as np

from keras_dcgan.serving import json_codec
from keras_dcgan.serving.session import InputError

DEFAULT_SIGNATURE = "serving_default"
_VERSION_OR_LABEL = r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
MAX_VERSION = 2**63 - 1  # TF Serving's versions are int64
PREDICT_ROUTE = re.compile(r"/v1/models/(?P<name>[^/:]+)" + _VERSION_OR_LABEL + r":predict", re.IGNORECASE)
STATUS_ROUTE = re.compile(r"/v1/models(?:/(?P<name>[^/:]+))?" + _VERSION_OR_LABEL + r"(?P<metadata>/metadata)?", re.IGNORECASE)
API_PREFIX = re.compile(r"/v1/", re.IGNORECASE)


class ApiError(Exception):
    """A request the server refuses: `status` (4xx) and a message for the client."""

    signature = ""  # set once the request's signature is known, for the metrics

    def __init__(self, status, message):
        # A message may quote the request, whose JSON can hold lone surrogates ("\ud800") that no
        # JSON encoder writes: those are escaped, so that the answer is always encodable.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PendingPrediction:
    """A predict request that passed every check; its latents wait for a model call (`PredictionApi.run_model`, then `finish`)."""

    signature: str
    latents: np.ndarray  # float32 [rows, latent_dim], checked
    row_format: bool  # "instances" in, "predictions" out; else "inputs" and "outputs"
    started: float  # time.perf_counter() when the request began, for the latency metric

    @property
    def rows(self):
        return len(self.latents)


def _latent_spec(latent_dim):
    return {"dtype": "DT_FLOAT", "shape": [-1, latent_dim]}


class PredictionApi:
    """TF Serving's routes over `session`. `run_model(latents)` defaults to the session's model.

    `metrics`, when given, is told of every answer: `observe(signature, status, seconds)`.
    """

    def __init__(self, session, model_name="dcgan", version=1, max_batch=256, metrics=None):
        self.session = session
        self.model_name = model_name
        self.version = int(version)
        self.max_batch = max_batch
        self.metrics = metrics
        images = {"dtype": "DT_FLOAT", "shape": [-1, *session.image_shape]}
        self.signatures = {
            "serving_default": ({"latent": _latent_spec(session.latent_dim)}, {"images": images}),
            "generate_png": ({"latent": _latent_spec(session.latent_dim)}, {"png_bytes": {"dtype": "DT_STRING", "shape": [-1]}}),
            "generate_from_seeds": ({"seeds": {"dtype": "DT_INT64", "shape": [-1]}}, {"images": images}),
        }
        if session.digit_categories:
            batch = {"dtype": "DT_INT64", "shape": [-1]}
            self.signatures["generate_digits"] = ({"seeds": batch, "digits": batch}, {"images": images})

    def respond(self, method, path, body=b""):
        """(status, payload for `json_codec.encode`) for one request; never raises for a client mistake.

        `path` is the request target as sent (percent-encoded, query string allowed).
        """
        answer = self.begin(method, path, body)
        return self.complete([answer])[0] if isinstance(answer, PendingPrediction) else answer

    def begin(self, method, path, body=b""):
        """(status, payload) for any request the model is not needed for, else a PendingPrediction."""
        started = time.perf_counter()
        try:
            signature, result = self._route(method, path, body, started)
        except ApiError as error:
            return self._answer(error.signature, started, error.status, {"error": error.message})
        if isinstance(result, PendingPrediction):
            return result
        return self._answer(signature, started, 200, result)

    def complete(self, pending):
        """One model call for the latents of every PendingPrediction in `pending`; [(status, payload)], one per request."""
        return [self.finish(prediction, images) for prediction, images in zip(pending, self.run_model(pending), strict=True)]

    def run_model(self, pending):
        """One model call for every PendingPrediction in `pending`; each one's own rows of the output, unchecked."""
        latents = pending[0].latents if len(pending) == 1 else np.concatenate([prediction.latents for prediction in pending])
        images = self.session.run_model(latents)
        if self.metrics is not None:
            self.metrics.observe_batch(len(images), len(pending))
        if len(pending) == 1:
            return [images]  # most calls under batch-1 load: no split to pay for
        ends = np.cumsum([prediction.rows for prediction in pending])
        return np.split(images, ends[:-1])

    def finish(self, prediction, images):
        """(status, payload) of a prediction from its own rows of the model's output, checked on their own.

        A request whose output is not finite gets its 400 while others of the same model call
        get their images.
        """
        try:
            outputs = self.session.check_images(images)
        except InputError as error:
            return self._answer(prediction.signature, prediction.started, 400, {"error": str(error)})
        if prediction.signature == "generate_png":
            outputs = [{"b64": base64.b64encode(png).decode("ascii")} for png in self.session.png_bytes(outputs)]
        payload = {"predictions": outputs} if prediction.row_format else {"outputs": outputs}
        return self._answer(prediction.signature, prediction.started, 200, payload)

    def _answer(self, signature, started, status, payload):
        if self.metrics is not None:
            self.metrics.observe(signature, status, time.perf_counter() - started)
        return status, payload

    def _route(self, method, path, body, started):
        path = path.split("?", 1)[0]
        if not API_PREFIX.match(path):
            raise ApiError(404, f"Not found: {path} (this server answers /v1/models/NAME[/versions/N][/metadata|:predict])")
        if method == "POST" and (match := PREDICT_ROUTE.fullmatch(path)):
            request = _parse_json(body)  # before the model is looked up, as TF Serving does
            self._check_model(match)
            return self._predict(request, started)
        if method == "GET" and (match := STATUS_ROUTE.fullmatch(path)):
            if match["name"] is None:
                raise ApiError(400, "Missing model name in request.")
            if match["metadata"]:
                self._check_model(match)
                return "metadata", self.metadata()
            self._check_model(match, label_matters=False)  # TF Serving's status ignores the label
            return "status", self.status()
        raise ApiError(400, f"Malformed request: {method} {path}")

    def _check_model(self, match, label_matters=True):
        name = urllib.parse.unquote(match["name"])
        if name != self.model_name:
            raise ApiError(404, f"Servable not found for request: Latest({name}); this server serves {self.model_name!r}")
        if match["label"] is not None and label_matters:
            raise ApiError(400, f"Unrecognized servable version label: {urllib.parse.unquote(match['label'])}")
        if match["version"] is not None and (version := _version(match["version"])) != self.version:
            raise ApiError(404, f"Servable not found for request: Specific({name}, {version}); available version: {self.version}")

    def status(self):
        return {
            "model_version_status": [
                {"version": str(self.version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        }

    def metadata(self):
        def tensor_info(name, spec):
            dims = [{"size": str(size), "name": ""} for size in spec["shape"]]
            return {"dtype": spec["dtype"], "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}

        signature_defs = {
            signature: {
                "inputs": {name: tensor_info(name, spec) for name, spec in inputs.items()},
                "outputs": {name: tensor_info(name, spec) for name, spec in outputs.items()},
                "method_name": "tensorflow/serving/predict",
            }
            for signature, (inputs, outputs) in self.signatures.items()
        }
        return {
            "model_spec": {"name": self.model_name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": signature_defs}},
        }

    def _predict(self, request, started):
        """(signature, PendingPrediction) for a parsed predict request; ApiError for a bad one."""
        signature = request.get("signature_name") or DEFAULT_SIGNATURE  # "" means the default, as in TF Serving
        if not isinstance(signature, str) or signature not in self.signatures:
            # Only a short string is echoed: the repr of a deeply nested value would itself overflow the stack.
            named = signature[:100] if isinstance(signature, str) else f"a JSON {type(signature).__name__}"
            raise ApiError(
                400, f'Serving signature name: "{named}" not found in signature def; available: {", ".join(self.signatures)}'
            )
        try:
            return signature, self._pending(signature, request, started)
        except ApiError as error:
            error.signature = signature
            raise

    def _pending(self, signature, request, started):
        input_names = tuple(self.signatures[signature][0])
        row_format = "instances" in request
        if row_format == ("inputs" in request):
            raise ApiError(400, 'the request must have exactly one of "instances" (row format) or "inputs" (columnar format)')
        values = _rows(request["instances"], input_names) if row_format else _columns(request["inputs"], input_names)
        arrays = {name: self._batch(name, value) for name, value in values.items()}
        try:
            return PendingPrediction(signature, self._latents(signature, arrays), row_format, started)
        except InputError as error:
            raise ApiError(400, str(error)) from error

    def _batch(self, input_name, values):
        array = _to_array(values, input_name)
        if array.ndim == 0 or array.shape[0] == 0:
            raise ApiError(400, f"{input_name} must be a non-empty batch (a list with one entry per example)")
        if array.shape[0] > self.max_batch:
            raise ApiError(400, f"batch of {array.shape[0]} exceeds this server's limit of {self.max_batch} per request")
        return array

    def _latents(self, signature, arrays):
        """Every signature draws from latents: the model call is the same for all, so requests of any signature share one."""
        if signature == "generate_from_seeds":
            latents = self.session.latents_from_seeds(arrays["seeds"])
        elif signature == "generate_digits":
            latents = self.session.digit_latents(arrays["seeds"], arrays["digits"])
        else:
            latents = arrays["latent"]
        return self.session.check_latents(latents)


def _version(digits):
    """The version in a path, or ApiError for one beyond int64 (Python would refuse to read 5,000 digits at all)."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        raise ApiError(400, f"version {digits[:20]}{'...' if len(digits) > 20 else ''} is not a 64-bit integer")
    return int(digits)


def _parse_json(body):
    try:
        request = json_codec.decode(body)
    except ValueError as error:
        raise ApiError(400, f"invalid JSON in the request body: {error}") from error
    if not isinstance(request, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(request).__name__}")
    return request


def _keys(input_names):
    return ("the key " if len(input_names) == 1 else "the keys ") + ", ".join(f'"{name}"' for name in input_names)


def _rows(instances, input_names):
    """Row format: a list of values (one input only), or of {input name: value} objects -> {input name: values}."""
    if not isinstance(instances, list):
        raise ApiError(400, '"instances" must be a list with one entry per example')
    if len(input_names) == 1 and not any(isinstance(instance, dict) for instance in instances):
        return {input_names[0]: instances}
    if not all(isinstance(instance, dict) and set(instance) == set(input_names) for instance in instances):
        raise ApiError(400, f'every object in "instances" must have exactly {_keys(input_names)}')
    return {name: [instance[name] for instance in instances] for name in input_names}


def _columns(inputs, input_names):
    """Columnar format: the batch itself (one input only), or {input name: batch, ...} (other keys ignored, as TF Serving does)."""
    if len(input_names) == 1 and not isinstance(inputs, dict):
        return {input_names[0]: inputs}
    if not isinstance(inputs, dict) or not set(input_names) <= set(inputs):
        got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ApiError(400, f'"inputs" must have {_keys(input_names)}, got {got}')
    return {name: inputs[name] for name in input_names}


def _to_array(values, input_name):
    """A numeric numpy array, or ApiError for ragged lists, strings, booleans and huge integers."""
    try:
        array = np.asarray(values)
    except (ValueError, OverflowError) as error:
        raise ApiError(400, f"{input_name} is not a rectangular array of numbers: {error}") from error
    if array.dtype.kind not in "iuf":
        kind = "booleans" if array.dtype.kind == "b" else f"values of type {array.dtype}"
        raise ApiError(400, f"{input_name} must be a rectangular array of numbers, got {kind}")
    return array
