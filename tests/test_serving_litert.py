"""`keras-dcgan serve` on LiteRT: `--tflite FILE`, `--model-base-path --runtime litert`, SIGHUP, batching, the missing extra.

Real server processes (TensorFlow blocked) on 127.0.0.1 serve the session's export's LiteRT file.
Their images are compared with GeneratorSession on the same export's ONNX file: two runtimes of
one generator, so within LITERT_TOLERANCE rather than bit for bit.
"""

import json
import shutil
import signal
import urllib.request

import numpy as np
import pytest

from keras_dcgan.contract import LITERT_FILE, MANIFEST_NAME, MODEL_FILE_ENTRIES
from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.runtimes import DEFAULT_RUNTIME, RUNTIME_NAMES
from keras_dcgan.serving.session import GeneratorSession
from test_model_versions import POLL_SECONDS, add_version, call, states, wait_for
from test_serving_batching import check_concurrent_requests_get_their_own_rows
from test_serving_hardening import tampered, wait_for_log
from test_serving_support import run_litert_free_cli, run_tf_free_cli, start_keras_dcgan_serve, start_keras_dcgan_serve_models

# The export's LiteRT file against its ONNX file (tests/test_serving.py checks the sessions the same way).
LITERT_TOLERANCE = 1e-4
SEEDS = [0, 1, 2, 3, 4, 2**31 - 1]
PREDICT = "/v1/models/dcgan:predict"
INFER = "/v2/models/dcgan/infer"


@pytest.fixture(scope="module")
def onnx_session(exported_model):
    return GeneratorSession(exported_model.onnx_path)


@pytest.fixture(scope="module")
def litert_path(exported_model):
    return exported_model.version_dir / LITERT_FILE


@pytest.fixture(scope="module")
def server(litert_path):
    """One server process (its model calls on a thread per core, the interpreter's lock between them), with metrics."""
    process = start_keras_dcgan_serve(litert_path, "--workers", 1, "--metrics", "--max-batch", 64)
    yield process
    process.stop()


def predict_body(seeds, latent_dim):
    return json.dumps({"instances": latents_from_seeds(seeds, latent_dim).tolist()}).encode()


def infer_body(seeds, latent_dim):
    latents = latents_from_seeds(seeds, latent_dim)
    return json.dumps({"inputs": [{"name": "latent", "shape": list(latents.shape), "datatype": "FP32", "data": latents.tolist()}]}).encode()


def infer_images(answer):
    (output,) = answer["outputs"]
    return np.asarray(output["data"], np.float32).reshape(output["shape"])


def scrape(url):
    with urllib.request.urlopen(f"{url}/monitoring/prometheus/metrics", timeout=10) as response:
        return response.read().decode()


def test_every_runtime_serve_offers_is_one_the_serving_side_runs():
    assert set(RUNTIME_NAMES) == set(MODEL_FILE_ENTRIES) and DEFAULT_RUNTIME == MODEL_FILE_ENTRIES[0]


@pytest.mark.slow
def test_serve_tflite_answers_predict_infer_metadata_status_and_metrics_as_the_onnx_file_draws(server, onnx_session):
    latent_dim = onnx_session.latent_dim
    expected = onnx_session.generate_from_seeds(SEEDS)
    status, answer = call(server.url, "POST", PREDICT, predict_body(SEEDS, latent_dim))
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=LITERT_TOLERANCE)
    seeds_body = json.dumps({"signature_name": "generate_from_seeds", "instances": SEEDS}).encode()
    status, answer = call(server.url, "POST", PREDICT, seeds_body)
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=LITERT_TOLERANCE)
    status, answer = call(server.url, "POST", INFER, infer_body(SEEDS, latent_dim))
    assert status == 200 and answer["model_version"] == "1"
    np.testing.assert_allclose(infer_images(answer), expected, atol=LITERT_TOLERANCE)

    assert states(call(server.url, "GET", "/v1/models/dcgan")[1]) == {1: ("AVAILABLE", "OK", "")}
    metadata = call(server.url, "GET", "/v1/models/dcgan/metadata")[1]
    assert metadata["model_spec"]["version"] == "1"
    latent_dims = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["latent"]["tensor_shape"]["dim"]
    assert [dim["size"] for dim in latent_dims] == ["-1", str(latent_dim)]
    v2_metadata = call(server.url, "GET", "/v2/models/dcgan")[1]
    assert v2_metadata["platform"] == "litert_tflite" and v2_metadata["versions"] == ["1"]
    assert v2_metadata["outputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, *onnx_session.image_shape]}]
    text = scrape(server.url)
    assert 'keras_dcgan_serve_requests_total{signature="serving_default",status="200"}' in text
    assert 'keras_dcgan_serve_requests_total{signature="v2/infer",status="200"}' in text
    assert 'keras_dcgan_serve_model_version{model="dcgan"} 1.0' in text


@pytest.mark.slow
def test_concurrent_requests_sharing_litert_calls_each_get_their_own_rows(server, onnx_session):
    check_concurrent_requests_get_their_own_rows(server, onnx_session, LITERT_TOLERANCE)


@pytest.mark.slow
def test_serve_tflite_in_worker_processes_answers_and_the_onnx_server_reports_its_platform(exported_model, litert_path, onnx_session):
    litert = start_keras_dcgan_serve(litert_path, "--workers", 2)
    onnx = start_keras_dcgan_serve(exported_model.onnx_path, "--workers", 1)
    try:
        assert "in 2 worker processes" in "".join(litert.output)
        for _ in range(4):  # connections land on either worker
            status, answer = call(litert.url, "POST", PREDICT, predict_body(SEEDS[:2], onnx_session.latent_dim))
            assert status == 200
            np.testing.assert_allclose(answer["predictions"], onnx_session.generate_from_seeds(SEEDS[:2]), atol=LITERT_TOLERANCE)
        assert call(litert.url, "GET", "/v2/models/dcgan")[1]["platform"] == "litert_tflite"
        assert call(onnx.url, "GET", "/v2/models/dcgan")[1]["platform"] == "onnxruntime_onnx"
        assert litert.stop() == 0 and onnx.stop() == 0
    finally:
        litert.stop()
        onnx.stop()


@pytest.mark.slow
def test_base_path_with_the_litert_runtime_serves_litert_files_and_a_version_without_one_fails_not_found(
    exported_model, onnx_session, tmp_path
):
    base_path = tmp_path / "dcgan"
    base_path.mkdir()
    add_version(base_path, exported_model.version_dir, 1)
    server = start_keras_dcgan_serve_models(base_path, "--runtime", "litert", "--workers", 1, "--file-system-poll-wait-seconds", POLL_SECONDS)
    try:
        assert "versions 1 from" in "".join(server.output) and "with LiteRT" in "".join(server.output)
        assert call(server.url, "GET", "/v2/models/dcgan")[1]["platform"] == "litert_tflite"
        status, answer = call(server.url, "POST", INFER, infer_body(SEEDS, onnx_session.latent_dim))
        assert status == 200
        np.testing.assert_allclose(infer_images(answer), onnx_session.generate_from_seeds(SEEDS), atol=LITERT_TOLERANCE)

        add_version(base_path, exported_model.version_dir, 2)
        (base_path / "2" / LITERT_FILE).unlink()  # an ONNX-only version: nothing for this runtime to serve
        wait_for(lambda: states(call(server.url, "GET", "/v1/models/dcgan")[1]).get(2, ("",))[0] == "END", "version 2 checked")
        listed = states(call(server.url, "GET", "/v1/models/dcgan")[1])
        assert listed[1] == ("AVAILABLE", "OK", "") and listed[2][:2] == ("END", "NOT_FOUND"), listed
        assert f"2/{LITERT_FILE} not found" in listed[2][2] and "--runtime litert" in listed[2][2], listed
        assert call(server.url, "POST", PREDICT, predict_body(SEEDS[:1], onnx_session.latent_dim))[0] == 200
        assert call(server.url, "GET", "/v1/models/dcgan/metadata")[1]["model_spec"]["version"] == "1"  # still the one serving
        assert "version 2 failed to load" in "".join(server.output) and "Traceback" not in "".join(server.output)
        assert server.stop() == 0
    finally:
        server.stop()


@pytest.mark.slow
def test_sighup_reloads_a_tflite_file_and_a_tampered_one_leaves_the_loaded_one_serving(exported_model, onnx_session, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(exported_model.version_dir, export)
    server = start_keras_dcgan_serve(export / LITERT_FILE, "--workers", 1)
    body = predict_body(SEEDS, onnx_session.latent_dim)
    try:
        before = call(server.url, "POST", PREDICT, body)[1]["predictions"]
        np.testing.assert_allclose(before, onnx_session.generate_from_seeds(SEEDS), atol=LITERT_TOLERANCE)
        server.process.send_signal(signal.SIGHUP)
        wait_for_log(server, f"reloaded {export / LITERT_FILE}")
        assert call(server.url, "POST", PREDICT, body)[1]["predictions"] == before

        tampered(export / LITERT_FILE)
        server.process.send_signal(signal.SIGHUP)
        wait_for_log(server, "could not reload")
        assert "SHA-256" in "".join(server.output) and server.process.poll() is None
        assert call(server.url, "POST", PREDICT, body)[1]["predictions"] == before
        assert server.stop() == 0
    finally:
        server.stop()


def test_serve_without_ai_edge_litert_is_one_line_naming_the_extra_before_serving(exported_model, litert_path, tmp_path):
    base_path = tmp_path / "dcgan"
    base_path.mkdir()
    add_version(base_path, exported_model.version_dir, 1)
    # Without the check up front, the base path's server would start with its version failed and never exit.
    for model_flags in (["--tflite", litert_path], ["--model-base-path", base_path, "--runtime", "litert", "--workers", 2]):
        completed = run_litert_free_cli("serve", *model_flags, "--port", 0, timeout=60)
        assert completed.returncode == 2 and len(completed.stderr.strip().splitlines()) == 1, completed.stderr
        assert 'pip install "keras-dcgan[litert]"' in completed.stderr and "serving" not in completed.stdout, completed


@pytest.mark.parametrize(
    "model_flags, message",
    [
        (["--tflite", "{onnx}"], "--tflite takes a .tflite file, got"),
        (["--onnx", "{litert}"], "--onnx takes a .onnx file, got"),
        (["--tflite", "{litert}", "--runtime", "litert"], "--runtime picks the file each version folder of a --model-base-path serves"),
        (["--model-base-path", "{folder}", "--version", "3"], "--version applies to --onnx and --tflite only"),
        (["--model-base-path", "{folder}", "--no-verify"], "--no-verify applies to --onnx and --tflite only"),
        (["--model-base-path", "{folder}", "--runtime", "tflite"], "argument --runtime: invalid choice: 'tflite'"),
        (["--tflite", "{litert}", "--onnx", "{onnx}"], "not allowed with argument"),
    ],
)
def test_serve_flag_mistakes_are_one_line_errors(exported_model, litert_path, model_flags, message):
    paths = {"onnx": exported_model.onnx_path, "litert": litert_path, "folder": exported_model.version_dir.parent}
    completed = run_tf_free_cli("serve", *(flag.format(**paths) for flag in model_flags), "--port", 0, timeout=60)
    assert completed.returncode == 2 and message in completed.stderr, completed.stderr


@pytest.mark.slow
def test_serve_tflite_refuses_a_file_without_its_manifest_unless_no_verify(litert_path, onnx_session, tmp_path):
    bare = tmp_path / LITERT_FILE
    shutil.copy(litert_path, bare)
    completed = run_tf_free_cli("serve", "--tflite", bare, "--port", 0, timeout=60)
    assert completed.returncode == 2 and f"no {MANIFEST_NAME} beside" in completed.stderr and "--no-verify" in completed.stderr
    server = start_keras_dcgan_serve(bare, "--no-verify", "--version", 7, "--workers", 1)
    try:
        status, answer = call(server.url, "POST", "/v1/models/dcgan/versions/7:predict", predict_body(SEEDS[:2], onnx_session.latent_dim))
        assert status == 200
        np.testing.assert_allclose(answer["predictions"], onnx_session.generate_from_seeds(SEEDS[:2]), atol=LITERT_TOLERANCE)
        assert server.stop() == 0
    finally:
        server.stop()
