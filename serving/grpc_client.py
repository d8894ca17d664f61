"""A client for TensorFlow Serving's gRPC API (port 8500), on tensorflow-serving-api.

    client = GrpcClient("127.0.0.1:8500", model_name="dcgan")
    images = client.generate(latents)                       # float32 [n, 28, 28, 1]
    outputs = client.predict({"seeds": np.arange(4)}, "generate_from_seeds")

tensorflow-serving-api pulls in TensorFlow, so it is the optional extra `keras-dcgan[grpc]`
and is imported only when a GrpcClient is made; this module itself imports numpy only.
Tensors are converted by hand (dtype, shape, tensor_content), not with tf.make_ndarray,
so that nothing under serving/ imports TensorFlow by name.
"""

import numpy as np

from keras_dcgan.contract import (
    DEFAULT_SIGNATURE, DIGITS, DIGITS_SIGNATURE, IMAGES, LATENT, PNG_BYTES, PNG_SIGNATURE, SEEDS, SEEDS_SIGNATURE,
)
from keras_dcgan.serving.rest_client import ServingError

# tensorflow/core/framework/types.proto; these numbers are part of the wire format and never change.
DT_FLOAT, DT_STRING, DT_INT64 = 1, 7, 9
NUMPY_DTYPES = {DT_FLOAT: np.float32, DT_INT64: np.int64}
TENSOR_DTYPES = {np.dtype(np.float32): DT_FLOAT, np.dtype(np.int64): DT_INT64}
VALUE_FIELDS = {DT_FLOAT: "float_val", DT_INT64: "int64_val"}


def load_serving_api():
    """The grpc and tensorflow_serving modules, or an ImportError saying which extra to install."""
    try:
        import grpc
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            get_model_status_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
        )
    except ImportError as error:
        raise ImportError(
            f"the gRPC client needs tensorflow-serving-api ({error}); install it with: pip install 'keras-dcgan[grpc]'"
        ) from error
    return grpc, get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc


def fill_tensor(tensor, value):
    """Write a numpy array (float32, int64) or a list of bytes into a TensorProto."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], bytes):
        tensor.dtype = DT_STRING
        tensor.tensor_shape.dim.add(size=len(value))
        tensor.string_val.extend(value)
        return tensor
    array = np.asarray(value)
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64)
    if array.dtype not in TENSOR_DTYPES:
        raise ValueError(f"cannot send {array.dtype} tensors; use float32, int64 or a list of bytes")
    tensor.dtype = TENSOR_DTYPES[array.dtype]
    for size in array.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    return tensor


def tensor_to_numpy(tensor):
    """A TensorProto as a numpy array (float32, int64) or a list of bytes (DT_STRING)."""
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    if tensor.dtype == DT_STRING:
        return list(tensor.string_val)
    if tensor.dtype not in NUMPY_DTYPES:
        raise ServingError(None, f"unsupported output dtype {tensor.dtype} (expected DT_FLOAT, DT_INT64 or DT_STRING)")
    dtype = np.dtype(NUMPY_DTYPES[tensor.dtype]).newbyteorder("<")
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype)
    else:
        values = np.asarray(getattr(tensor, VALUE_FIELDS[tensor.dtype]), dtype)
        if values.size == 1 and np.prod(shape) != 1:  # TF stores a tensor of one repeated value once
            values = np.full(int(np.prod(shape)), values[0], dtype)
    return values.astype(NUMPY_DTYPES[tensor.dtype]).reshape(shape)


class GrpcClient:
    """Status, metadata and predict over gRPC; errors raise ServingError with the gRPC code and the server's message."""

    def __init__(self, target="127.0.0.1:8500", model_name="dcgan", version=None, timeout=30.0):
        (self._grpc, self._metadata_pb2, self._status_pb2, model_service, self._predict_pb2, prediction_service) = (
            load_serving_api()
        )
        self.target = target
        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self._channel = self._grpc.insecure_channel(target)
        self._predictions = prediction_service.PredictionServiceStub(self._channel)
        self._models = model_service.ModelServiceStub(self._channel)

    def _model_spec(self, message, signature_name=None):
        message.model_spec.name = self.model_name
        if self.version is not None:
            message.model_spec.version.value = int(self.version)
        if signature_name is not None:
            message.model_spec.signature_name = signature_name
        return message

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as error:
            if error.code() == self._grpc.StatusCode.UNAVAILABLE:
                raise ServingError(None, f"cannot reach {self.target}: {error.details()}") from error
            raise ServingError(error.code().name, error.details()) from error

    def status(self):
        """[{"version": int, "state": "AVAILABLE", ...}] for the model's versions."""
        response = self._call(self._models.GetModelStatus, self._model_spec(self._status_pb2.GetModelStatusRequest()))
        return [
            {"version": status.version, "state": self._status_pb2.ModelVersionStatus.State.Name(status.state),
             "error_message": status.status.error_message}
            for status in response.model_version_status
        ]

    def signature_defs(self):
        """The model's SignatureDefMap: signature name -> SignatureDef (inputs, outputs, TensorInfo with shapes)."""
        request = self._model_spec(self._metadata_pb2.GetModelMetadataRequest())
        request.metadata_field.append("signature_def")
        response = self._call(self._predictions.GetModelMetadata, request)
        signature_map = self._metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_map.signature_def

    def latent_dim(self):
        return self.signature_defs()[DEFAULT_SIGNATURE].inputs[LATENT.name].tensor_shape.dim[1].size

    def build_predict_request(self, inputs, signature_name=None):
        """A PredictRequest for {input name: array or list of bytes}."""
        request = self._model_spec(self._predict_pb2.PredictRequest(), signature_name)
        for name, value in inputs.items():
            fill_tensor(request.inputs[name], value)
        return request

    def predict(self, inputs, signature_name=None):
        """{output name: numpy array or list of bytes} for {input name: value}."""
        response = self._call(self._predictions.Predict, self.build_predict_request(inputs, signature_name))
        return {name: tensor_to_numpy(tensor) for name, tensor in response.outputs.items()}

    def generate(self, latents):
        return self.predict({LATENT.name: np.asarray(latents, np.float32)}, DEFAULT_SIGNATURE)[IMAGES.name]

    def generate_png(self, latents):
        return self.predict({LATENT.name: np.asarray(latents, np.float32)}, PNG_SIGNATURE)[PNG_BYTES.name]

    def generate_from_seeds(self, seeds):
        return self.predict({SEEDS.name: np.asarray(seeds, np.int64)}, SEEDS_SIGNATURE)[IMAGES.name]

    def generate_digits(self, seeds, digits):
        inputs = {SEEDS.name: np.asarray(seeds, np.int64), DIGITS.name: np.asarray(digits, np.int64)}
        return self.predict(inputs, DIGITS_SIGNATURE)[IMAGES.name]

    def close(self):
        self._channel.close()
