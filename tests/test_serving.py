"""The inference side: GeneratorSession on a real export, `keras-dcgan serve` and the REST client, `generate`.

Servers and the CLI run in subprocesses where importing tensorflow and keras fails. The client
tests also run against `tensorflow_model_server` serving the SavedModel when it is on PATH.
"""

import http.client
import json
import shutil
import signal
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest

from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.manifest import ManifestError
from keras_dcgan.serving.rest_client import RestClient, ServingError
from keras_dcgan.serving.session import GeneratorSession, InputError, ModelFileError
from test_serving_support import (  # noqa: F401  (fixtures)
    decode_png,
    exported_model,
    run_tf_free_cli,
    start_keras_dcgan_serve,
    start_tensorflow_model_server,
)

MAX_BATCH = 64
MAX_BODY_BYTES = 200_000
SEEDS = [0, 1, 2, 3, 4, 2**31 - 1]


@pytest.fixture(scope="module")
def session(exported_model):
    return GeneratorSession(exported_model.onnx_path)


@pytest.fixture(scope="module")
def latents(session):
    return latents_from_seeds(SEEDS, session.latent_dim)


# -- GeneratorSession ------------------------------------------------------------------------------


def test_session_agrees_with_the_saved_model_on_all_three_signatures(exported_model, session, latents):
    import tensorflow as tf

    saved_model = tf.saved_model.load(str(exported_model.version_dir))
    signatures = saved_model.signatures
    expected = signatures["serving_default"](latent=tf.constant(latents))["images"].numpy()
    np.testing.assert_allclose(session.generate(latents), expected, atol=1e-5)
    from_seeds = signatures["generate_from_seeds"](seeds=tf.constant(SEEDS, tf.int64))["images"].numpy()
    np.testing.assert_allclose(session.generate_from_seeds(SEEDS), from_seeds, atol=1e-5)
    saved_pngs = signatures["generate_png"](latent=tf.constant(latents))["png_bytes"].numpy()
    for ours, theirs in zip(session.png_bytes(session.generate(latents)), saved_pngs, strict=True):
        assert np.abs(decode_png(ours).astype(int) - decode_png(theirs).astype(int).reshape(28, 28)).max() <= 1
    assert session.version == 1 and session.latent_dim == exported_model.manifest["latent_dim"]


def test_session_refuses_a_tampered_or_truncated_onnx_file(exported_model, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(exported_model.version_dir, copy)
    onnx_path = copy / "generator.onnx"
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"generator.onnx does not match .*manifest.json: SHA-256"):
        GeneratorSession(onnx_path)
    onnx_path.write_bytes(bytes(data[:-10]))
    with pytest.raises(ManifestError, match=r"bytes, the manifest records"):
        GeneratorSession(onnx_path)


def test_session_refuses_a_manifest_with_other_shapes(exported_model, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(exported_model.version_dir, copy)
    manifest = dict(exported_model.manifest, latent_dim=exported_model.manifest["latent_dim"] + 1)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="latent_dim is 32, the manifest records 33"):
        GeneratorSession(copy / "generator.onnx")
    del manifest["files"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="lacks the key.* files"):
        GeneratorSession(copy / "generator.onnx")


def test_session_runs_without_a_manifest(exported_model, session, latents, tmp_path):
    bare = tmp_path / "generator.onnx"
    shutil.copy(exported_model.onnx_path, bare)
    assert np.array_equal(GeneratorSession(bare).generate(latents), session.generate(latents))


def test_session_refuses_missing_and_broken_files(tmp_path):
    with pytest.raises(ModelFileError, match="ONNX file not found: .*nothing.onnx"):
        GeneratorSession(tmp_path / "nothing.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="onnxruntime cannot load .*broken.onnx"):
        GeneratorSession(tmp_path / "broken.onnx")


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((1, 32), np.nan, np.float32), "NaN or Inf"),
        (np.full((2, 32), np.inf, np.float32), "NaN or Inf"),
        (np.zeros((2, 31), np.float32), r"shape \[batch, 32\], got \[2, 31\]"),
        (np.zeros(32, np.float32), r"got \[32\]"),
        ([["a"] * 32], "must hold numbers"),
    ],
)
def test_session_rejects_bad_latents(session, bad, message):
    with pytest.raises(InputError, match=message):
        session.generate(bad)


@pytest.mark.parametrize("bad, message", [([-1], r"\[0, 2147483647\]"), ([2**31], r"\[0, 2147483647\]"), ([1.5], "integers")])
def test_session_rejects_bad_seeds(session, bad, message):
    with pytest.raises(InputError, match=message):
        session.generate_from_seeds(bad)


def test_session_outputs_images_in_range_and_writes_pngs(session, tmp_path):
    images = session.generate_from_seeds(range(10))
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert np.array_equal(images, session.generate_from_seeds(range(10))), "seeds must be deterministic"
    session.write_grid(tmp_path / "grid.png", images)
    assert decode_png((tmp_path / "grid.png").read_bytes()).shape == (3 * 30 + 2, 4 * 30 + 2)  # 10 digits: 4 columns, 3 rows, 2-pixel gaps
    paths = session.write_pngs(tmp_path / "digits", images, [f"seed_{seed}" for seed in range(10)])
    assert [path.name for path in paths][:2] == ["seed_0.png", "seed_1.png"]
    assert np.array_equal(decode_png(paths[3].read_bytes()), np.round(images[3, ..., 0] * 255).astype(np.uint8))


# -- the REST client against keras-dcgan serve (and tensorflow_model_server where installed) -------------


@pytest.fixture(scope="module", params=["keras-dcgan serve", "tensorflow_model_server"])
def backend(request, exported_model):
    if request.param == "keras-dcgan serve":
        server = start_keras_dcgan_serve(
            exported_model.onnx_path, "--max-batch", MAX_BATCH, "--max-body-bytes", MAX_BODY_BYTES
        )
    else:
        server = start_tensorflow_model_server(exported_model.export_root)
    server.name = request.param
    yield server
    server.stop()


def tolerance(backend):
    """keras-dcgan serve runs the same ONNX file (exact through JSON); TF Serving runs the SavedModel."""
    return 0.0 if backend.name == "keras-dcgan serve" else 1e-5


@pytest.mark.slow
def test_status_and_metadata(backend, session):
    client = RestClient(backend.url, "dcgan")
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.status()["model_version_status"][0]["version"] == "1"
    signatures = client.metadata()["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "generate_png", "generate_from_seeds"} <= set(signatures)
    assert signatures["generate_png"]["outputs"]["png_bytes"]["dtype"] == "DT_STRING"
    assert signatures["generate_from_seeds"]["inputs"]["seeds"]["dtype"] == "DT_INT64"
    assert client.latent_dim() == session.latent_dim
    assert RestClient(backend.url, "dcgan", version=1).status()["model_version_status"][0]["version"] == "1"


@pytest.mark.slow
@pytest.mark.parametrize("columnar", [False, True], ids=["row", "columnar"])
def test_predict_equals_the_onnx_session(backend, session, latents, columnar):
    client = RestClient(backend.url, "dcgan")
    expected = session.generate(latents)
    np.testing.assert_allclose(client.generate(latents, columnar=columnar), expected, rtol=0, atol=tolerance(backend))
    np.testing.assert_allclose(
        client.generate_from_seeds(SEEDS, columnar=columnar), session.generate_from_seeds(SEEDS), rtol=0, atol=1e-5
    )
    pngs = client.generate_png(latents, columnar=columnar)
    assert len(pngs) == len(latents)
    for png, image in zip(pngs, session.png_bytes(expected), strict=True):
        assert np.abs(decode_png(png).astype(int).reshape(28, 28) - decode_png(image).astype(int)).max() <= 1


@pytest.mark.slow
def test_predict_accepts_named_inputs_and_versioned_paths(backend, session, latents):
    client = RestClient(backend.url, "dcgan", version=1)
    named_rows = client.predict([{"latent": row} for row in latents.tolist()])
    named_columns = client.predict({"latent": latents.tolist()}, signature_name="serving_default", columnar=True)
    for outputs in (named_rows, named_columns):
        np.testing.assert_allclose(np.asarray(outputs, np.float32), session.generate(latents), atol=tolerance(backend) + 1e-7)


@pytest.mark.slow
def test_client_raises_the_servers_error_message(backend):
    with pytest.raises(ServingError) as caught:
        RestClient(backend.url, "dcgan").predict([[0.0] * 3])
    assert 400 <= caught.value.status < 500 and caught.value.message
    with pytest.raises(ServingError) as caught:
        RestClient(backend.url, "no_such_model").status()
    assert caught.value.status == 404 and "no_such_model" in caught.value.message


# -- bad requests to keras-dcgan serve -----------------------------------------------------------


@pytest.fixture(scope="module")
def our_server(exported_model):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--max-batch", MAX_BATCH, "--max-body-bytes", MAX_BODY_BYTES)
    yield server
    server.stop()


def good_latent_body(latent_dim, batch=1):
    return json.dumps({"instances": latents_from_seeds(range(batch), latent_dim).tolist()})


def raw_request(url, method, path, body=None, headers=None):
    """(status, decoded JSON) of one request on a fresh connection, with full control of what is sent."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


PREDICT = "/v1/models/dcgan:predict"
LATENT_ROW = [0.0] * 32
BAD_REQUESTS = {
    "invalid JSON": ("POST", PREDICT, "{bad", 400, "invalid JSON"),
    "not an object": ("POST", PREDICT, "[1, 2]", 400, "must be a JSON object"),
    "nested too deeply": ("POST", PREDICT, '{"instances": ' + "[" * 50_000 + "]" * 50_000 + "}", 400, "nested too deeply"),
    "no instances or inputs": ("POST", PREDICT, "{}", 400, 'exactly one of "instances"'),
    "both formats": ("POST", PREDICT, json.dumps({"instances": [LATENT_ROW], "inputs": [LATENT_ROW]}), 400, "exactly one of"),
    "wrong shape": ("POST", PREDICT, json.dumps({"instances": [[0.0] * 31]}), 400, r"shape [batch, 32], got [1, 31]"),
    "ragged rows": ("POST", PREDICT, json.dumps({"instances": [LATENT_ROW, [0.0]]}), 400, "not a rectangular array"),
    "strings": ("POST", PREDICT, json.dumps({"instances": [["0.5"] * 32]}), 400, "must be a rectangular array of numbers"),
    "booleans": ("POST", PREDICT, json.dumps({"inputs": [[True] * 32]}), 400, "got booleans"),
    "NaN": ("POST", PREDICT, '{"instances": [[NaN' + ", 0.0" * 31 + "]]}", 400, "NaN or Inf"),
    "Infinity": ("POST", PREDICT, '{"inputs": {"latent": [[1e999' + ", 0.0" * 31 + "]]}}", 400, "NaN or Inf"),
    "wrong input name": ("POST", PREDICT, json.dumps({"inputs": {"z": [LATENT_ROW]}}), 400, 'exactly the key "latent"'),
    "empty batch": ("POST", PREDICT, json.dumps({"instances": []}), 400, "non-empty batch"),
    "batch over limit": ("POST", PREDICT, json.dumps({"instances": [LATENT_ROW] * (MAX_BATCH + 1)}), 400, "batch of 65 exceeds"),
    "body over limit": ("POST", PREDICT, " " * (MAX_BODY_BYTES + 1), 413, "exceeds this server's limit of 200000 bytes"),
    "negative seed": ("POST", PREDICT, json.dumps({"signature_name": "generate_from_seeds", "instances": [-1]}), 400, "seeds must be"),
    "fractional seed": ("POST", PREDICT, json.dumps({"signature_name": "generate_from_seeds", "inputs": [1.5]}), 400, "integers"),
    "unknown signature": ("POST", PREDICT, json.dumps({"signature_name": "nope", "instances": [LATENT_ROW]}), 400, '"nope" not found'),
    "signature not a string": ("POST", PREDICT, json.dumps({"signature_name": ["x"], "instances": [LATENT_ROW]}), 400, "not found"),
    "unknown model": ("POST", "/v1/models/other:predict", good_latent_body(32), 404, "Servable not found for request: Latest(other)"),
    "unknown version": ("GET", "/v1/models/dcgan/versions/7", None, 404, "Specific(dcgan, 7)"),
    "unknown path": ("GET", "/v2/anything", None, 404, "Malformed request"),
    "GET on predict": ("GET", PREDICT, None, 405, "method GET not allowed"),
    "POST on status": ("POST", "/v1/models/dcgan", "{}", 405, "method POST not allowed"),
    "DELETE": ("DELETE", "/v1/models/dcgan/metadata", None, 405, "method DELETE not allowed"),
    "unknown method": ("BREW", "/v1/models/dcgan", None, 405, "method BREW not allowed"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_request_gets_a_json_4xx_and_the_server_keeps_serving(our_server, session, case):
    method, path, body, status, message = BAD_REQUESTS[case]
    got_status, payload = raw_request(our_server.url, method, path, body, {"Content-Type": "application/json"})
    assert got_status == status, payload
    assert set(payload) == {"error"} and message in payload["error"], payload
    good_status, good = raw_request(our_server.url, "POST", PREDICT, good_latent_body(session.latent_dim))
    assert good_status == 200 and np.asarray(good["predictions"]).shape == (1, 28, 28, 1)


@pytest.mark.slow
def test_chunked_bodies_and_garbage_request_lines_are_refused_as_json(our_server, session):
    status, payload = raw_request(our_server.url, "POST", PREDICT, iter([b"{}"]), {"Transfer-Encoding": "chunked"})
    assert status == 411 and "Content-Length" in payload["error"]
    host, port = urllib.parse.urlsplit(our_server.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = raw.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400") and b'{"error":' in reply
    assert RestClient(our_server.url).generate(latents_from_seeds([0], session.latent_dim)).shape == (1, 28, 28, 1)


@pytest.mark.slow
def test_concurrent_clients_get_their_own_answers(our_server, session):
    client = RestClient(our_server.url)  # one keep-alive connection per thread
    failures = []

    def work(worker):
        for round_number in range(10):
            seeds = [worker * 100 + round_number, worker]
            try:
                got = client.generate(latents_from_seeds(seeds, session.latent_dim))
                if not np.array_equal(got, session.generate_from_seeds(seeds)):
                    failures.append(f"worker {worker} round {round_number}: wrong images")
            except ServingError as error:
                failures.append(f"worker {worker} round {round_number}: {error}")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures


# -- processes: shutdown, start-up checks, generate ------------------------------------------------


@pytest.mark.slow
def test_connection_limit_and_sigterm_with_a_keep_alive_connection_open(exported_model, session):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--max-connections", 1)
    client = RestClient(server.url)
    assert client.generate(latents_from_seeds([1], session.latent_dim)).shape == (1, 28, 28, 1)  # connection stays open
    status, payload = raw_request(server.url, "GET", "/v1/models/dcgan")  # a second connection: over the limit
    assert status == 503 and "too many open connections" in payload["error"]
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"  # the first one still works
    assert server.stop(timeout=10) == 0
    assert "stopped\n" in "".join(server.output)
    with pytest.raises(ServingError, match="cannot reach"):
        client.status()


@pytest.mark.slow
def test_stalled_body_times_out_and_sigterm_lets_a_request_in_flight_finish(exported_model, session):
    server = start_keras_dcgan_serve(exported_model.onnx_path, "--idle-timeout", 2)
    body = good_latent_body(session.latent_dim, batch=2).encode()
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n%s" % (PREDICT.encode(), len(body), body[:10]))
        response = http.client.HTTPResponse(raw)  # the rest of the body never comes
        response.begin()
        assert response.status == 408 and "did not arrive within 2.0 s" in json.loads(response.read())["error"]
    assert RestClient(server.url).status()["model_version_status"][0]["state"] == "AVAILABLE"

    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n%s" % (PREDICT.encode(), len(body), body[:10]))
        time.sleep(0.5)  # the server has read the headers and waits for the rest of the body
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None, "the server exited with a request in flight"
        raw.sendall(body[10:])
        response = http.client.HTTPResponse(raw)
        response.begin()
        assert response.status == 200 and response.getheader("Connection") == "close"
        assert np.asarray(json.loads(response.read())["predictions"]).shape == (2, 28, 28, 1)
    assert server.process.wait(10) == 0
    assert "stopped\n" in "".join(server.output)


@pytest.mark.slow
def test_serve_refuses_a_tampered_onnx_file_at_start_up(exported_model, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(exported_model.version_dir, copy)
    data = bytearray((copy / "generator.onnx").read_bytes())
    data[-100] ^= 0x01
    (copy / "generator.onnx").write_bytes(bytes(data))
    completed = run_tf_free_cli("serve", "--onnx", copy / "generator.onnx", "--port", "0")
    assert completed.returncode == 2
    assert "does not match" in completed.stderr and "SHA-256" in completed.stderr


@pytest.mark.slow
def test_generate_writes_the_same_digits_from_onnx_and_from_the_server(exported_model, our_server, session, tmp_path):
    count = 70  # more than one request's worth (REQUEST_BATCH = 64) for the server
    from_onnx = run_tf_free_cli("generate", "--onnx", exported_model.onnx_path, "--n", count, "--seed", 10, "--out", tmp_path / "onnx")
    assert from_onnx.returncode == 0, from_onnx.stderr
    from_server = run_tf_free_cli("generate", "--server", our_server.url, "--n", count, "--seed", 10, "--out", tmp_path / "server.png")
    assert from_server.returncode == 0, from_server.stderr
    written = sorted(path.name for path in (tmp_path / "onnx").iterdir())
    assert written == sorted(["grid.png"] + [f"seed_{seed}.png" for seed in range(10, 10 + count)])
    grid = decode_png((tmp_path / "server.png").read_bytes())
    onnx_grid = decode_png((tmp_path / "onnx" / "grid.png").read_bytes())
    assert np.abs(grid.astype(int) - onnx_grid).max() <= 1  # batches of 64 + 6 vs one of 70: rounding may differ
    for seed in (12, 78):  # one from each request
        expected = np.round(session.generate_from_seeds([seed])[0, ..., 0] * 255).astype(np.uint8)
        assert np.array_equal(decode_png((tmp_path / "onnx" / f"seed_{seed}.png").read_bytes()), expected)
    assert grid.shape == (8 * 30 + 2, 9 * 30 + 2)  # 70 digits: 9 columns, 8 rows


@pytest.mark.slow
def test_cli_user_errors_exit_2_with_a_clear_message(exported_model, tmp_path):
    completed = run_tf_free_cli("generate", "--server", "http://127.0.0.1:9", "--out", tmp_path / "x.png", timeout=60)
    assert completed.returncode == 2 and "cannot reach http://127.0.0.1:9" in completed.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = run_tf_free_cli("serve", "--onnx", exported_model.onnx_path, "--port", port, timeout=60)
    assert completed.returncode == 2 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in completed.stderr
    completed = run_tf_free_cli("generate", "--onnx", tmp_path / "missing.onnx", "--out", tmp_path / "x.png", timeout=60)
    assert completed.returncode == 2 and "ONNX file not found" in completed.stderr


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib json"])
def test_response_encoding_round_trips_float32_exactly(session, monkeypatch, use_orjson):
    from keras_dcgan.serving import json_response

    if not use_orjson:
        monkeypatch.setattr(json_response, "orjson", None)
    elif json_response.orjson is None:
        pytest.skip("orjson is not installed (it is a dependency of keras-dcgan; the stdlib case still runs)")
    images = session.generate_from_seeds([5, 6])
    decoded = json.loads(json_response.encode({"predictions": images, "note": "x"}))
    assert decoded["note"] == "x" and np.array_equal(np.asarray(decoded["predictions"], np.float32), images)
