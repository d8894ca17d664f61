"""The inference side: GeneratorSession on a real export (ONNX and LiteRT), `keras-dcgan serve` and the REST client, `generate`.

Servers and the CLI run in subprocesses where importing tensorflow and keras fails. The client
tests also run against `tensorflow_model_server` serving the SavedModel when it is on PATH.
"""

import http.client
import json
import shutil
import socket
import urllib.parse

import numpy as np
import pytest

from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.contract import ManifestError
from keras_dcgan.serving.rest_client import RestClient, ServingError
from keras_dcgan.serving.session import GeneratorSession, InputError, ModelFileError
from test_serving_support import (
    decode_png,
    run_litert_free_cli,
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


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("files", ["generator.onnx"], 'files must be an object of path -> {"sha256"'),
        ("files", {"generator.onnx": {"sha256": "x", "bytes": 1}}, "files must be .*64 hex digits"),
        ("onnx", "generator.onnx", 'onnx must be an object whose "file"'),
        ("image_shape", 28, r"image_shape must be \[height, width, channels\]"),
        ("latent_dim", "32", "latent_dim must be an integer >= 1"),
        ("value_range", [0, 255], r"value_range must be \[0.0, 1.0\], got \[0, 255\]"),
        ("version", "abc", 'version must be an integer >= 1, got "abc"'),
        ("digits", "ten", 'digits must be an object whose "categories" is an integer >= 2'),
        ("digits", {"categories": "ten"}, r'digits must be .*, got \{"categories": "ten"\}'),
        ("digits", {"categories": 10, "signature": "generate_png"}, r'digits must be .*"signature", if present, "generate_digits"'),
        ("source", {"config": "mnist"}, 'source must be an object whose "config" is an object'),
        ("parity", "not recorded", None),  # a field no reader decides on is the export's record, not checked
    ],
)
def test_session_refuses_a_manifest_that_breaks_its_schema(exported_model, tmp_path, field, value, expected):
    copy = tmp_path / "1"
    shutil.copytree(exported_model.version_dir, copy)
    (copy / "manifest.json").write_text(json.dumps(dict(exported_model.manifest, **{field: value})))
    if expected is None:
        assert GeneratorSession(copy / "generator.onnx").latent_dim == exported_model.manifest["latent_dim"]
        return
    with pytest.raises(ManifestError, match=rf"manifest .*manifest.json: {expected}"):
        GeneratorSession(copy / "generator.onnx")


@pytest.mark.parametrize("command", ["generate", "serve"])
def test_a_manifest_field_of_the_wrong_type_is_one_line_naming_the_file_and_field(exported_model, capsys, tmp_path, command):
    from keras_dcgan.cli import main

    copy = tmp_path / "1"
    shutil.copytree(exported_model.version_dir, copy)
    (copy / "manifest.json").write_text(json.dumps(dict(exported_model.manifest, digits="ten")))
    arguments = ["--out", str(tmp_path / "x.png"), "--digit", "3"] if command == "generate" else ["--port", "0"]
    assert main([command, "--onnx", str(copy / "generator.onnx"), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"keras-dcgan {command}: error: manifest {copy / 'manifest.json'}: digits must be an object") and "\n" not in error


def test_session_refuses_a_file_without_manifest_unless_told_not_to_verify(exported_model, session, latents, tmp_path):
    bare = tmp_path / "generator.onnx"
    shutil.copy(exported_model.onnx_path, bare)
    with pytest.raises(ManifestError, match=r"no manifest.json beside .*generator.onnx: .* pass --no-verify"):
        GeneratorSession(bare)
    assert np.array_equal(GeneratorSession(bare, verify=False).generate(latents), session.generate(latents))


@pytest.mark.parametrize("suffix, kind, runtime", [(".onnx", "ONNX", "onnxruntime"), (".tflite", "LiteRT", "LiteRT")])
def test_session_refuses_missing_and_broken_files(tmp_path, suffix, kind, runtime):
    with pytest.raises(ModelFileError, match=f"{kind} file not found: .*nothing{suffix}"):
        GeneratorSession(tmp_path / f"nothing{suffix}")
    (tmp_path / f"broken{suffix}").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=f"{runtime} cannot load .*broken{suffix}"):
        GeneratorSession(tmp_path / f"broken{suffix}", verify=False)


def test_session_refuses_a_file_of_another_kind(tmp_path):
    with pytest.raises(ModelFileError, match=r"model.bin: expected an .onnx or .tflite file"):
        GeneratorSession(tmp_path / "model.bin", verify=False)


# -- GeneratorSession over LiteRT: the same checked loading path as ONNX -----------------------------


def _litert_path(exported_model):
    return exported_model.version_dir / "generator.tflite"


@pytest.fixture(scope="module")
def litert_session(exported_model):
    return GeneratorSession(_litert_path(exported_model))


def test_litert_session_draws_what_onnx_and_the_saved_model_draw(exported_model, session, litert_session, latents):
    import tensorflow as tf

    from_seeds = tf.saved_model.load(str(exported_model.version_dir)).signatures["generate_from_seeds"]
    expected = from_seeds(seeds=tf.constant(SEEDS, tf.int64))["images"].numpy()
    np.testing.assert_allclose(litert_session.generate_from_seeds(SEEDS), expected, atol=1e-4)
    np.testing.assert_allclose(litert_session.generate(latents), session.generate(latents), atol=1e-4)
    np.testing.assert_allclose(litert_session.generate(latents[:1]), session.generate(latents[:1]), atol=1e-4)  # resized down
    for name in ("latent_dim", "image_shape", "value_range", "version", "digit_categories", "input_name", "output_name"):
        assert getattr(litert_session, name) == getattr(session, name), name


def test_litert_session_refuses_a_tampered_file_and_a_manifest_that_disagrees(exported_model, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(exported_model.version_dir, copy)
    path = copy / "generator.tflite"
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"generator.tflite does not match .*manifest.json: SHA-256"):
        GeneratorSession(path)
    path.write_bytes(original)
    cases = [
        (dict(exported_model.manifest["litert"], output="pixels"), "litert.output is images, the manifest records pixels"),
        (dict(exported_model.manifest["litert"], signature="other"), "litert.signature is serving_default, the manifest records other"),
        ("generator.tflite", 'litert must be an object whose "file", "signature"'),
        (None, "has no 'litert' entry describing generator.tflite"),
    ]
    for entry, expected in cases:
        manifest = {key: value for key, value in exported_model.manifest.items() if key != "litert"}
        if entry is not None:
            manifest["litert"] = entry
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ManifestError, match=expected):
            GeneratorSession(path)


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
# The full table of bad requests runs in-process against PredictionApi.respond (test_serving_api.py);
# these few check that the server passes its answers through, body cap included.
BAD_REQUESTS = {
    "invalid JSON": ("POST", PREDICT, "{bad", 400, "invalid JSON"),
    "NaN": ("POST", PREDICT, '{"instances": [[NaN' + ", 0.0" * 31 + "]]}", 400, "NaN or Inf"),
    "body over limit": ("POST", PREDICT, " " * (MAX_BODY_BYTES + 1), 413, "exceeds this server's limit of 200000 bytes"),
    "unknown model": ("POST", "/v1/models/other:predict", good_latent_body(32), 404, "Servable not found for request: Latest(other)"),
    "wrong method": ("GET", PREDICT, None, 400, "Malformed request"),
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
def test_garbage_request_lines_are_refused_as_json(our_server, session):
    host, port = urllib.parse.urlsplit(our_server.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = raw.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400") and b'{"error":"malformed HTTP request' in reply
    assert RestClient(our_server.url).generate(latents_from_seeds([0], session.latent_dim)).shape == (1, 28, 28, 1)


# -- processes: shutdown, start-up checks, generate ------------------------------------------------


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
def test_generate_tflite_writes_the_same_digits_as_onnx_without_tensorflow(exported_model, session, tmp_path):
    count = 70  # more than one call's worth (REQUEST_BATCH = 64): the interpreter is resized between calls
    completed = run_tf_free_cli("generate", "--tflite", _litert_path(exported_model), "--n", count, "--seed", 10, "--out", tmp_path / "litert")
    assert completed.returncode == 0, completed.stderr
    assert f"wrote {count} digits (seeds 10..79)" in completed.stdout
    expected = np.round(session.generate_from_seeds(np.arange(10, 10 + count)) * 255)
    for index, seed in enumerate(range(10, 10 + count)):
        drawn = decode_png((tmp_path / "litert" / f"seed_{seed}.png").read_bytes()).astype(int)
        assert np.abs(drawn - expected[index, ..., 0]).max() <= 1, seed  # within 1e-4: rounding may differ by one level


def test_generate_tflite_names_the_extra_when_ai_edge_litert_is_missing_and_refuses_wrong_files(exported_model, tmp_path):
    completed = run_litert_free_cli("generate", "--tflite", _litert_path(exported_model), "--out", tmp_path / "x.png")
    assert completed.returncode == 2 and len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert 'pip install "keras-dcgan[litert]"' in completed.stderr
    completed = run_tf_free_cli("generate", "--tflite", exported_model.onnx_path, "--out", tmp_path / "x.png")
    assert completed.returncode == 2 and "--tflite takes a .tflite file, got" in completed.stderr
    completed = run_tf_free_cli("generate", "--tflite", _litert_path(exported_model), "--onnx", exported_model.onnx_path)
    assert completed.returncode == 2 and "not allowed with argument" in completed.stderr
    assert not (tmp_path / "x.png").exists()


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


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--port", "70000"], "argument --port: must be in [0, 65535] (0 picks a free port), got 70000"),
        (["serve", "--port", "-1"], "argument --port: must be in [0, 65535] (0 picks a free port), got -1"),
        (["generate", "--n", "1000000"], "argument --n: at most 10,000 digits per run (one grid holds them all), got 1,000,000"),
        (["serve", "--request-timeout", "inf"], "argument --request-timeout: must be a finite number of seconds above 0, got inf"),
    ],
    ids=["port above 65535", "negative port", "a million digits", "infinite deadline"],
)
def test_out_of_range_flags_are_one_line_errors_with_exit_2(exported_model, capsys, args, message):
    from keras_dcgan.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--onnx", str(exported_model.onnx_path)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and error.endswith(message), error


def test_generate_refuses_an_unwritable_out_before_any_work(exported_model, capsys, tmp_path):
    from keras_dcgan.cli import main

    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    for out in (a_file / "digits.png", a_file / "folder"):
        assert main(["generate", "--onnx", str(exported_model.onnx_path), "--n", "2", "--out", str(out)]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"keras-dcgan generate: error: --out {out}") and f"{a_file} is a file, not a folder" in error
        assert "\n" not in error
    assert a_file.read_text() == "keep me"


def test_generate_refuses_an_onnx_file_without_manifest_unless_told_not_to_verify(exported_model, capsys, tmp_path):
    from keras_dcgan.cli import main

    bare = tmp_path / "generator.onnx"
    shutil.copy(exported_model.onnx_path, bare)
    assert main(["generate", "--onnx", str(bare), "--n", "2", "--out", str(tmp_path / "x.png")]) == 2
    assert "no manifest.json beside" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    assert main(["generate", "--onnx", str(bare), "--n", "2", "--out", str(tmp_path / "x.png"), "--no-verify"]) == 0
    assert decode_png((tmp_path / "x.png").read_bytes()).shape == (30 + 2, 2 * 30 + 2)  # 2 digits: 2 columns, 1 row


def test_generate_draws_many_digits_in_batches_with_the_same_result(exported_model, session, tmp_path):
    from keras_dcgan.cli import main

    assert main(["generate", "--onnx", str(exported_model.onnx_path), "--n", "150", "--seed", "7", "--out", str(tmp_path / "many")]) == 0
    for seed in (7, 7 + 64, 7 + 149):  # first, second and last batch of 64
        expected = np.round(session.generate_from_seeds([seed])[0, ..., 0] * 255).astype(np.uint8)
        assert np.array_equal(decode_png((tmp_path / "many" / f"seed_{seed}.png").read_bytes()), expected)


def test_response_encoding_round_trips_float32_exactly(session):
    from keras_dcgan.serving import json_codec

    images = session.generate_from_seeds([5, 6])
    decoded = json.loads(json_codec.encode({"predictions": images, "note": "x"}))
    assert decoded["note"] == "x" and np.array_equal(np.asarray(decoded["predictions"], np.float32), images)


REQUEST_DOCUMENTS = {
    "latents": b'{"instances": [[0.5, -1.25e-3, 3]]}',
    "NaN and Infinity literals": b'{"instances": [[NaN, Infinity, -Infinity]]}',
    "beyond float range": b"[1e400, -1e400]",
    "UTF-16": '{"signature_name": "serving_default"}'.encode("utf-16"),
    "duplicate keys": b'{"a": 1, "a": 2}',
}


@pytest.mark.parametrize("name", REQUEST_DOCUMENTS)
def test_request_decoding_reads_what_the_standard_library_reads(name):
    from keras_dcgan.serving import json_codec

    document = REQUEST_DOCUMENTS[name]
    # repr: NaN equals nothing, its repr does
    assert repr(json_codec.decode(document)) == repr(json.loads(document))


def test_request_decoding_errors_are_value_errors_with_the_standard_librarys_message():
    from keras_dcgan.serving import json_codec

    with pytest.raises(ValueError, match=r"Expecting value: line 1 column 21"):
        json_codec.decode(b'{"instances": [[0.5,')
    with pytest.raises(ValueError, match="nested too deeply"):
        json_codec.decode(b"[" * 100_000)
