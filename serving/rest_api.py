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
Which session answers is the `ModelRepository`'s to say (model_repository.py): the latest
available version, `/versions/N` (404 unless AVAILABLE) or `/labels/L` (400 for a label the
config does not define); a prediction holds its version's lease from `begin` to `finish`, so
that a version retiring meanwhile is unloaded only once it has been answered.
A server that merges concurrent predictions into one model call uses the two halves of
`respond`: `begin` parses and checks a request (a bad one never reaches the model) and returns
either its answer or a `PendingPrediction`; `run_model` runs the latents of any number of those
in one model call (one per version among them), and `finish` answers each from its own rows
(`complete` does both; `abandon` releases a prediction that will never be finished).
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
import weakref
from dataclasses import dataclass

import numpy as np

from keras_dcgan.contract import DEFAULT_SIGNATURE, DIGITS, DIGITS_SIGNATURE, LATENT, PNG_SIGNATURE, SEEDS, SEEDS_SIGNATURE, signatures_of
from keras_dcgan.serving import json_codec
from keras_dcgan.serving.model_repository import Lease, ModelRepository, ServableNotFound, UnknownLabel
from keras_dcgan.serving.session import InputError

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
    lease: Lease  # the version answering it, held until `finish` or `abandon`

    @property
    def rows(self):
        return len(self.latents)


def session_signatures(session):
    """{signature: (inputs, outputs)}, each {tensor name: {"dtype", "shape"}}: the export contract's signatures of `session`."""

    def specs(tensors):
        return {tensor.name: {"dtype": tensor.dtype, "shape": tensor.dims(session.latent_dim, session.image_shape)} for tensor in tensors}

    return {name: (specs(signature.inputs), specs(signature.outputs)) for name, signature in signatures_of(session.digit_categories).items()}


class PredictionApi:
    """TF Serving's routes over the versions of `models`, a ModelRepository.

    `metrics`, when given, is told of every answer: `observe(signature, status, seconds)`.
    """

    def __init__(self, models, max_batch=256, metrics=None):
        self.models = models
        self.model_name = models.model_name
        self.max_batch = max_batch
        self.metrics = metrics
        self._signatures = weakref.WeakKeyDictionary()  # session -> signatures_of(session), while it is loaded

    @classmethod
    def of_session(cls, session, model_name="dcgan", version=1, max_batch=256, metrics=None):
        """The API over one session, served as `version` of `model_name` (what `serve --onnx` runs)."""
        return cls(ModelRepository.of_session(session, model_name, version), max_batch, metrics)

    def signatures(self, session):
        if session not in self._signatures:
            self._signatures[session] = session_signatures(session)
        return self._signatures[session]

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
        try:
            outputs = self.run_model(pending)
        except BaseException:
            for prediction in pending:
                self.abandon(prediction)
            raise
        return [self.finish(prediction, images) for prediction, images in zip(pending, outputs, strict=True)]

    def run_model(self, pending):
        """One model call for every PendingPrediction in `pending` (one per version); each one's own rows of the output, unchecked."""
        session = pending[0].lease.session
        if any(prediction.lease.session is not session for prediction in pending):
            return self._run_each_version(pending)
        latents = pending[0].latents if len(pending) == 1 else np.concatenate([prediction.latents for prediction in pending])
        images = session.run_model(latents)
        if self.metrics is not None:
            self.metrics.observe_batch(len(images), len(pending))
        if len(pending) == 1:
            return [images]  # most calls under batch-1 load: no split to pay for
        ends = np.cumsum([prediction.rows for prediction in pending])
        return np.split(images, ends[:-1])

    def _run_each_version(self, pending):
        """run_model over predictions of several versions (during a rollout): one call per version, answers in order."""
        groups = {}
        for index, prediction in enumerate(pending):
            groups.setdefault(id(prediction.lease.session), []).append(index)
        outputs = [None] * len(pending)
        for indices in groups.values():
            for index, images in zip(indices, self.run_model([pending[index] for index in indices]), strict=True):
                outputs[index] = images
        return outputs

    def finish(self, prediction, images):
        """(status, payload) of a prediction from its own rows of the model's output, checked on their own.

        A request whose output is not finite gets its 400 while others of the same model call
        get their images.
        """
        session = prediction.lease.session
        try:
            outputs = session.check_images(images)
            if prediction.signature == PNG_SIGNATURE:
                outputs = [{"b64": base64.b64encode(png).decode("ascii")} for png in session.png_bytes(outputs)]
        except InputError as error:
            return self._answer(prediction.signature, prediction.started, 400, {"error": str(error)})
        finally:
            prediction.lease.release()
        payload = {"predictions": outputs} if prediction.row_format else {"outputs": outputs}
        return self._answer(prediction.signature, prediction.started, 200, payload)

    @staticmethod
    def abandon(prediction):
        """Release a prediction that will not be finished (its client left, or its model call failed)."""
        prediction.lease.release()

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
            lease = self._lease(match)
            try:
                return self._predict(lease, request, started)
            except BaseException:
                lease.release()
                raise
        if method == "GET" and (match := STATUS_ROUTE.fullmatch(path)):
            if match["name"] is None:
                raise ApiError(400, "Missing model name in request.")
            if match["metadata"]:
                with self._lease(match) as lease:
                    return "metadata", self.metadata(lease)
            return "status", self.status(match)  # TF Serving's status ignores the label
        raise ApiError(400, f"Malformed request: {method} {path}")

    def _lease(self, match):
        name = urllib.parse.unquote(match["name"])
        label = None if match["label"] is None else urllib.parse.unquote(match["label"])
        try:
            return self.models.lease(name, None if match["version"] is None else _version(match["version"]), label)
        except UnknownLabel:
            raise ApiError(400, f"Unrecognized servable version label: {label}") from None
        except ServableNotFound as missing:
            raise self._not_found(missing) from None

    def _not_found(self, missing):
        if missing.model_name != self.model_name:
            return ApiError(404, f"Servable not found for request: Latest({missing.model_name}); this server serves {self.model_name!r}")
        available = ", ".join(map(str, self.models.available_versions())) or "none"
        request = f"Latest({missing.model_name})" if missing.version is None else f"Specific({missing.model_name}, {missing.version})"
        return ApiError(404, f"Servable not found for request: {request}; available versions: {available}")

    def status(self, match):
        version = None if match["version"] is None else _version(match["version"])
        try:
            statuses = self.models.statuses(urllib.parse.unquote(match["name"]), version)
        except ServableNotFound as missing:
            raise self._not_found(missing) from None
        return {
            "model_version_status": [
                {"version": str(status.version), "state": status.state,
                 "status": {"error_code": status.error_code, "error_message": status.error_message}}
                for status in statuses
            ]
        }

    def metadata(self, lease):
        def tensor_info(name, spec):
            dims = [{"size": str(size), "name": ""} for size in spec["shape"]]
            return {"dtype": spec["dtype"], "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}

        signature_defs = {
            signature: {
                "inputs": {name: tensor_info(name, spec) for name, spec in inputs.items()},
                "outputs": {name: tensor_info(name, spec) for name, spec in outputs.items()},
                "method_name": "tensorflow/serving/predict",
            }
            for signature, (inputs, outputs) in self.signatures(lease.session).items()
        }
        return {
            "model_spec": {"name": self.model_name, "signature_name": "", "version": str(lease.version)},
            "metadata": {"signature_def": {"signature_def": signature_defs}},
        }

    def _predict(self, lease, request, started):
        """(signature, PendingPrediction) for a parsed predict request; ApiError for a bad one."""
        signature = request.get("signature_name") or DEFAULT_SIGNATURE  # "" means the default, as in TF Serving
        signatures = self.signatures(lease.session)
        if not isinstance(signature, str) or signature not in signatures:
            # Only a short string is echoed: the repr of a deeply nested value would itself overflow the stack.
            named = signature[:100] if isinstance(signature, str) else f"a JSON {type(signature).__name__}"
            raise ApiError(
                400, f'Serving signature name: "{named}" not found in signature def; available: {", ".join(signatures)}'
            )
        try:
            return signature, self._pending(lease, signature, request, started)
        except ApiError as error:
            error.signature = signature
            raise

    def _pending(self, lease, signature, request, started):
        input_names = tuple(self.signatures(lease.session)[signature][0])
        row_format = "instances" in request
        if row_format == ("inputs" in request):
            raise ApiError(400, 'the request must have exactly one of "instances" (row format) or "inputs" (columnar format)')
        values = _rows(request["instances"], input_names) if row_format else _columns(request["inputs"], input_names)
        arrays = {name: self._batch(name, value) for name, value in values.items()}
        try:
            return PendingPrediction(signature, self._latents(lease.session, signature, arrays), row_format, started, lease)
        except InputError as error:
            raise ApiError(400, str(error)) from error

    def _batch(self, input_name, values):
        array = _to_array(values, input_name)
        if array.ndim == 0 or array.shape[0] == 0:
            raise ApiError(400, f"{input_name} must be a non-empty batch (a list with one entry per example)")
        if array.shape[0] > self.max_batch:
            raise ApiError(400, f"batch of {array.shape[0]} exceeds this server's limit of {self.max_batch} per request")
        return array

    @staticmethod
    def _latents(session, signature, arrays):
        """Every signature draws from latents: the model call is the same for all, so requests of any signature share one."""
        if signature == SEEDS_SIGNATURE:
            latents = session.latents_from_seeds(arrays[SEEDS.name])
        elif signature == DIGITS_SIGNATURE:
            latents = session.digit_latents(arrays[SEEDS.name], arrays[DIGITS.name])
        else:
            latents = arrays[LATENT.name]
        return session.check_latents(latents)


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
