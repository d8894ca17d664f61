"""The gRPC client (tensorflow-serving-api) against real gRPC servers.

`tensorflow_model_server` cannot be installed here (ENVIRONMENT.md), so the client is tested
against a gRPC server in this process that implements TF Serving's PredictionService and
ModelService the way TF Serving does: real protos, the exported SavedModel's own SignatureDefs,
the SavedModel run by TensorFlow. What that cannot show is a behaviour of the real binary
that this stand-in lacks; those tests run against `tensorflow_model_server` when it is on PATH.
"""

import re
import subprocess
import sys
from concurrent import futures

import numpy as np
import pytest

pytest.importorskip("tensorflow_serving.apis", reason="tensorflow-serving-api (the extra keras-dcgan[grpc]) is not installed")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from keras_dcgan.latents import latents_from_seeds  # noqa: E402
from keras_dcgan.serving.grpc_client import GrpcClient, fill_tensor, tensor_to_numpy  # noqa: E402
from keras_dcgan.serving.rest_client import ServingError  # noqa: E402
from keras_dcgan.serving.session import GeneratorSession  # noqa: E402
from test_serving_support import (  # noqa: E402
    REPO_ROOT,
    decode_png,
    run_tf_free_cli,
    start_tensorflow_model_server,
)

SEEDS = [3, 1, 4, 1, 5]


# -- tensors: our hand conversion agrees with TensorFlow's --------------------------------------


@pytest.mark.parametrize(
    "value",
    [np.arange(12, dtype=np.float32).reshape(3, 4) / 7, np.array([0, 5, 2**31 - 1], np.int64), np.zeros((0, 3), np.float32)],
    ids=["float32", "int64", "empty"],
)
def test_tensors_convert_like_tensorflow(value):
    ours = fill_tensor(predict_pb2.PredictRequest().inputs["x"], value)
    np.testing.assert_array_equal(tf.make_ndarray(ours), value)
    assert tf.make_ndarray(ours).dtype == value.dtype
    parsed = tensor_to_numpy(tf.make_tensor_proto(value))
    np.testing.assert_array_equal(parsed, value)
    assert parsed.dtype == value.dtype


def test_strings_and_repeated_values_convert_like_tensorflow():
    pngs = [b"\x89PNG one", b"\x89PNG two"]
    assert tensor_to_numpy(tf.make_tensor_proto(pngs)) == pngs
    assert list(tf.make_ndarray(fill_tensor(predict_pb2.PredictRequest().inputs["x"], pngs))) == pngs
    repeated = tf.make_tensor_proto(0.25, dtype=tf.float32, shape=[2, 3])
    np.testing.assert_array_equal(tensor_to_numpy(repeated), np.full((2, 3), 0.25, np.float32))
    with pytest.raises(ValueError, match="cannot send"):
        fill_tensor(predict_pb2.PredictRequest().inputs["x"], np.array(["a"]))


def test_predict_request_names_model_version_and_signature():
    client = GrpcClient("127.0.0.1:1", model_name="dcgan", version=3)  # channels connect lazily: no server needed
    request = client.build_predict_request({"seeds": [7, 8]}, "generate_from_seeds")
    assert (request.model_spec.name, request.model_spec.version.value) == ("dcgan", 3)
    assert request.model_spec.signature_name == "generate_from_seeds"
    assert request.inputs["seeds"].dtype == tf.int64.as_datatype_enum
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["seeds"]), [7, 8])
    client.close()


def test_unreachable_server_is_a_serving_error():
    client = GrpcClient("127.0.0.1:9", timeout=5)
    with pytest.raises(ServingError, match="cannot reach 127.0.0.1:9"):
        client.status()
    client.close()


# -- the client against a gRPC server that runs the exported SavedModel -------------------------


class SavedModelServicer(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's Predict, GetModelMetadata and GetModelStatus over one SavedModel version."""

    def __init__(self, version_dir, name="dcgan", version=1):
        self.name, self.version = name, version
        self.model = tf.saved_model.load(str(version_dir))
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
        self.signature_defs = saved_model.meta_graphs[0].signature_def

    def _check_spec(self, spec, context):
        if spec.name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version") and spec.version.value != self.version:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, {spec.version.value})")

    def Predict(self, request, context):
        self._check_spec(request.model_spec, context)
        signature_name = request.model_spec.signature_name or "serving_default"
        if signature_name not in self.model.signatures:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f'Serving signature name: "{signature_name}" not found in signature def')
        inputs = {name: tf.constant(tf.make_ndarray(tensor)) for name, tensor in request.inputs.items()}
        try:
            outputs = self.model.signatures[signature_name](**inputs)
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).splitlines()[0])
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response

    def GetModelMetadata(self, request, context):
        self._check_spec(request.model_spec, context)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in self.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.name
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def GetModelStatus(self, request, context):
        self._check_spec(request.model_spec, context)
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add(version=self.version, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return response


@pytest.fixture(scope="module", params=["gRPC server over the SavedModel", "tensorflow_model_server"])
def grpc_target(request, exported_model):
    if request.param == "tensorflow_model_server":
        server = start_tensorflow_model_server(exported_model.export_root)
        yield server.grpc_target
        server.stop()
        return
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = SavedModelServicer(exported_model.version_dir)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture(scope="module")
def session(exported_model):
    return GeneratorSession(exported_model.onnx_path)


def test_status_and_metadata_over_grpc(grpc_target, session):
    client = GrpcClient(grpc_target, "dcgan")
    assert client.status() == [{"version": 1, "state": "AVAILABLE", "error_message": ""}]
    assert {"serving_default", "generate_png", "generate_from_seeds"} <= set(client.signature_defs())
    assert client.latent_dim() == session.latent_dim
    client.close()


def test_all_signatures_over_grpc_equal_the_onnx_session(grpc_target, session):
    client = GrpcClient(grpc_target, "dcgan", version=1)
    latents = latents_from_seeds(SEEDS, session.latent_dim)
    expected = session.generate(latents)
    np.testing.assert_allclose(client.generate(latents), expected, atol=1e-5)
    np.testing.assert_allclose(client.generate_from_seeds(SEEDS), expected, atol=1e-5)
    pngs = client.generate_png(latents)
    assert len(pngs) == len(SEEDS)
    for png, image in zip(pngs, session.png_bytes(expected), strict=True):
        assert np.abs(decode_png(png).astype(int).reshape(28, 28) - decode_png(image).astype(int)).max() <= 1
    client.close()


def test_grpc_errors_carry_the_servers_code_and_message(grpc_target, session):
    client = GrpcClient(grpc_target, "dcgan")
    with pytest.raises(ServingError) as caught:
        client.predict({"latent": np.zeros((1, 3), np.float32)})
    assert caught.value.status == "INVALID_ARGUMENT" and caught.value.message
    with pytest.raises(ServingError) as caught:
        GrpcClient(grpc_target, "no_such_model").status()
    assert caught.value.status == "NOT_FOUND" and "no_such_model" in caught.value.message
    assert client.generate(latents_from_seeds([0], session.latent_dim)).shape == (1, 28, 28, 1)
    client.close()


@pytest.mark.slow
def test_generate_cli_over_grpc_writes_the_onnx_digits(grpc_target, session, tmp_path):
    """The one CLI run that may import TensorFlow (tensorflow-serving-api does); same digits as from ONNX."""
    completed = subprocess.run(
        [sys.executable, "-m", "keras_dcgan.cli", "generate", "--grpc", grpc_target, "--n", "4", "--seed", "20", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=180, cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    expected = np.round(session.generate_from_seeds([21])[0, ..., 0] * 255).astype(np.uint8)
    assert np.abs(decode_png((tmp_path / "seed_21.png").read_bytes()).astype(int) - expected).max() <= 1
    assert (tmp_path / "grid.png").exists()


@pytest.mark.slow
def test_generate_cli_without_the_grpc_extra_says_what_to_install(tmp_path):
    completed = run_tf_free_cli("generate", "--grpc", "127.0.0.1:9", "--out", tmp_path / "x.png")
    assert completed.returncode == 2
    assert "pip install 'keras-dcgan[grpc]'" in completed.stderr


def test_deployment_files_agree_with_each_other_and_the_export_layout():
    """models.config parses as TF Serving's ModelServerConfig, and docker-compose.yml mounts what it names."""
    serving_dir = REPO_ROOT / "serving"
    config = text_format.Parse((serving_dir / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("dcgan", "/models/dcgan", "tensorflow")
    assert model.model_version_policy.latest.num_versions == 2
    compose = (serving_dir / "docker-compose.yml").read_text()
    assert re.search(r"image: tensorflow/serving:", compose)
    assert '"127.0.0.1:8500:8500"' in compose and '"127.0.0.1:8501:8501"' in compose
    mounts = {target: source for source, target in re.findall(r"^\s+- (\S+):(/[^:\s]+)(?::ro)?$", compose, re.MULTILINE)}
    assert mounts["/config/models.config"] == "./models.config"
    assert mounts["/models"].endswith("exports}")  # EXPORT_ROOT, default ../exports: what `keras-dcgan export` writes
    assert "--model_config_file=/config/models.config" in compose
