"""A client for TensorFlow Serving's REST API (and `keras-dcgan serve`, which speaks the same). stdlib + numpy.

    client = RestClient("http://127.0.0.1:8501", model_name="dcgan")
    images = client.generate(latents)              # serving_default, float32 [n, 28, 28, 1]
    pngs = client.generate_png(latents)            # generate_png, one PNG (bytes) per latent
    raw = client.predict({"latent": latents.tolist()}, signature_name="serving_default", columnar=True)

Each thread keeps one HTTP/1.1 connection open (keep-alive) and reuses it. A response
{"error": ...} raises ServingError carrying the HTTP status and the server's message.
"""

import base64
import http.client
import json
import threading
import urllib.parse

import numpy as np

from keras_dcgan.contract import DEFAULT_SIGNATURE, DIGITS, DIGITS_SIGNATURE, LATENT, PNG_SIGNATURE, SEEDS, SEEDS_SIGNATURE


class ServingError(Exception):
    """The server refused a request, or could not be reached (`status` None).

    `status` is the HTTP status (int) for REST, the gRPC status code name (str) for gRPC;
    `message` is the server's own error message.
    """

    def __init__(self, status, message):
        protocol = "HTTP" if isinstance(status, int) else "gRPC"
        super().__init__(f"{protocol} {status}: {message}" if status else message)
        self.status = status
        self.message = message


def decode_b64(value):
    """Replace every {"b64": "..."} in a JSON value with the bytes it encodes."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return {key: decode_b64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_b64(item) for item in value]
    return value


class RestClient:
    def __init__(self, url="http://127.0.0.1:8501", model_name="dcgan", version=None, timeout=30.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL must look like http://HOST:PORT, got {url!r}")
        self.url = url
        self._connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._netloc = parts.netloc
        model_path = f"{parts.path.rstrip('/')}/v1/models/{model_name}"
        self.model_path = model_path + (f"/versions/{version}" if version is not None else "")
        self.timeout = timeout
        self._local = threading.local()

    # -- TF Serving's three routes -------------------------------------------------------------

    def status(self):
        return self.request("GET", self.model_path)

    def metadata(self):
        return self.request("GET", f"{self.model_path}/metadata")

    def predict(self, inputs, signature_name=None, columnar=False):
        """Send `inputs` (row `instances` or columnar `inputs`); returns predictions/outputs with b64 decoded."""
        body = {"inputs" if columnar else "instances": inputs}
        if signature_name is not None:
            body["signature_name"] = signature_name
        response = self.request("POST", f"{self.model_path}:predict", body)
        key = "outputs" if columnar else "predictions"
        if key not in response:
            raise ServingError(200, f"response has no {key!r}: {json.dumps(response)[:200]}")
        return decode_b64(response[key])

    # -- the generator's signatures --------------------------------------------------------------

    def latent_dim(self):
        """The latent size, read from the `serving_default` signature's metadata."""
        signature = self.metadata()["metadata"]["signature_def"]["signature_def"][DEFAULT_SIGNATURE]
        return int(signature["inputs"][LATENT.name]["tensor_shape"]["dim"][1]["size"])

    def generate(self, latents, columnar=False):
        """float32 images [n, 28, 28, 1] in [0, 1] for latents [n, latent_dim]."""
        return np.asarray(self.predict(_as_list(latents), DEFAULT_SIGNATURE, columnar), np.float32)

    def generate_png(self, latents, columnar=False):
        """One PNG (bytes) per latent."""
        return self.predict(_as_list(latents), PNG_SIGNATURE, columnar)

    def generate_from_seeds(self, seeds, columnar=False):
        """Images for integer seeds, computed by the server's `generate_from_seeds` signature."""
        return np.asarray(self.predict([int(seed) for seed in seeds], SEEDS_SIGNATURE, columnar), np.float32)

    def generate_digits(self, seeds, digits):
        """Images of the asked digits, one per seed, from the server's `generate_digits` signature."""
        inputs = {SEEDS.name: [int(seed) for seed in seeds], DIGITS.name: [int(digit) for digit in digits]}
        return np.asarray(self.predict(inputs, DIGITS_SIGNATURE, columnar=True), np.float32)

    # -- transport -------------------------------------------------------------------------------

    def request(self, method, path, body=None):
        """One request on this thread's keep-alive connection; the decoded JSON response or ServingError."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection, reused = self._connection()
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (http.client.HTTPException, ConnectionError) as error:
            self._local.connection = None
            connection.close()
            if reused:  # the server may have closed an idle keep-alive connection: retry once on a new one
                return self.request(method, path, body)
            raise ServingError(None, f"cannot reach {self.url}: {error}") from error
        except OSError as error:
            self._local.connection = None
            connection.close()
            raise ServingError(None, f"cannot reach {self.url}: {error}") from error
        if response.will_close:
            self._local.connection = None
            connection.close()
        try:
            decoded = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ServingError(response.status, f"non-JSON response: {data[:200]!r}") from None
        if response.status >= 400 or (isinstance(decoded, dict) and "error" in decoded):
            message = decoded.get("error", data[:200]) if isinstance(decoded, dict) else data[:200]
            raise ServingError(response.status, message)
        return decoded

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        connection = self._connection_class(self._netloc, timeout=self.timeout)
        self._local.connection = connection
        return connection, False

    def close(self):
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _as_list(array):
    return np.asarray(array, np.float32).tolist()
