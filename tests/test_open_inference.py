"""The Open Inference Protocol (v2) routes: their transport-free core on a real export, fuzzed, then tritonclient against a real server.

The in-process cases call `OpenInferenceApi.begin` (and the model, then `finish`) as the server
does; the last ones run `keras-dcgan serve` in a process without TensorFlow and talk to it with
`tritonclient.http`, a client written to the protocol by Triton's authors, not by this project.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.health import ServerHealth
from keras_dcgan.serving.open_inference import OpenInferenceApi, PendingInfer
from keras_dcgan.serving.rest_api import PredictionApi
from keras_dcgan.serving.rest_client import RestClient
from keras_dcgan.serving.session import GeneratorSession
from test_serving_support import start_keras_dcgan_serve

MAX_BATCH = 16
INFER = "/v2/models/dcgan/infer"
LATENT_DIM = 32  # tests/helpers.small_config's


@pytest.fixture(scope="module")
def session(exported_model):
    return GeneratorSession(exported_model.onnx_path)


@pytest.fixture(scope="module")
def v2(session):
    return OpenInferenceApi(PredictionApi.of_session(session, "dcgan", 1, MAX_BATCH), ServerHealth())


def answer(v2, method, path, body=b"", headers=()):
    """(status, headers dict, body bytes) of one request, the model called as the server would."""
    result = v2.begin(method, path, [(name.lower(), value) for name, value in headers], body)
    if isinstance(result, PendingInfer):
        result = v2.finish(result, v2.api.run_model([result.prediction])[0])
    status, response_headers, response_body = result
    return status, dict(response_headers), response_body


def infer_body(*inputs, **fields):
    return json.dumps({"inputs": list(inputs), **fields}).encode()


def tensor(name, shape, datatype, data=None, **parameters):
    entry = {"name": name, "shape": shape, "datatype": datatype}
    if data is not None:
        entry["data"] = data
    if parameters:
        entry["parameters"] = parameters
    return entry


def latent_tensor(rows=1):
    return tensor("latent", [rows, LATENT_DIM], "FP32", latents_from_seeds(range(rows), LATENT_DIM).reshape(-1).tolist())


# -- routes, metadata, errors ------------------------------------------------------------------------


def test_server_and_model_metadata_describe_the_inputs_and_the_output(v2, session):
    status, headers, body = answer(v2, "GET", "/v2")
    assert status == 200 and headers[b"content-type"] == b"application/json"
    assert json.loads(body)["name"] == "keras-dcgan" and "binary_tensor_data" in json.loads(body)["extensions"]
    for path in ("/v2/models/dcgan", "/v2/models/dcgan/versions/1"):
        status, _, body = answer(v2, "GET", path)
        metadata = json.loads(body)
        assert status == 200 and metadata["name"] == "dcgan" and metadata["versions"] == ["1"]
        assert {entry["name"]: (entry["datatype"], entry["shape"]) for entry in metadata["inputs"]} == {
            "latent": ("FP32", [-1, LATENT_DIM]), "seeds": ("INT64", [-1]), "digits": ("INT64", [-1]),
        }
        assert metadata["outputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, *session.image_shape]}]
    for path, payload in [
        ("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True}), ("/v2/models/dcgan/ready", {"name": "dcgan", "ready": True}),
    ]:
        status, _, body = answer(v2, "GET", path)
        assert (status, json.loads(body)) == (200, payload)


def test_json_infers_of_latents_seeds_and_digits_draw_what_the_session_draws(v2, session):
    latents = latents_from_seeds(range(3), LATENT_DIM)
    cases = [
        (infer_body(latent_tensor(3), id="req-7"), session.generate(latents)),
        (infer_body(tensor("seeds", [3], "INT64", [0, 1, 2])), session.generate_from_seeds([0, 1, 2])),
        (infer_body(tensor("seeds", [2], "INT64", [5, 6]), tensor("digits", [2], "INT64", [3, 9])),
         session.generate_digits([5, 6], [3, 9])),
    ]
    for body, expected in cases:
        status, headers, response = answer(v2, "POST", INFER, body)
        assert status == 200, response
        output = json.loads(response)["outputs"]
        assert output[0]["name"] == "images" and output[0]["datatype"] == "FP32" and output[0]["shape"] == list(expected.shape)
        np.testing.assert_array_equal(np.asarray(output[0]["data"], np.float32).reshape(expected.shape), expected)
    assert json.loads(answer(v2, "POST", INFER, cases[0][0])[2])["id"] == "req-7"
    nested = infer_body(tensor("latent", [3, LATENT_DIM], "FP32", latents.tolist()))  # nested lists, as Triton also takes
    np.testing.assert_array_equal(np.asarray(json.loads(answer(v2, "POST", INFER, nested)[2])["outputs"][0]["data"], np.float32), cases[0][1].reshape(-1))


def binary_request(arrays, outputs=None):
    """(body, headers) of an infer whose inputs travel as binary data, as tritonclient sends them."""
    inputs = [
        tensor(name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64", binary_data_size=array.nbytes)
        for name, array in arrays.items()
    ]
    header = json.dumps({"inputs": inputs, **({"outputs": outputs} if outputs is not None else {})}).encode()
    body = header + b"".join(array.astype(array.dtype.newbyteorder("<")).tobytes() for array in arrays.values())
    return body, [(b"Inference-Header-Content-Length", str(len(header)).encode())]


def test_binary_inputs_and_outputs_carry_exactly_the_json_values(v2, session):
    seeds, digits = np.array([4, 8], np.int64), np.array([1, 2], np.int64)
    body, headers = binary_request({"seeds": seeds, "digits": digits}, outputs=[{"name": "images", "parameters": {"binary_data": True}}])
    status, response_headers, response = answer(v2, "POST", INFER, body, headers)
    assert status == 200 and response_headers[b"content-type"] == b"application/octet-stream"
    length = int(response_headers[b"inference-header-content-length"])
    header = json.loads(response[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 2 * 28 * 28 * 4} and "data" not in header["outputs"][0]
    images = np.frombuffer(response[length:], "<f4").reshape(header["outputs"][0]["shape"])
    np.testing.assert_array_equal(images, session.generate_digits(seeds, digits))
    # binary_data_output on the request asks the same for every output
    body = infer_body(tensor("seeds", [2], "INT64", [4, 8]), parameters={"binary_data_output": True})
    status, response_headers, response = answer(v2, "POST", INFER, body)
    assert status == 200 and b"inference-header-content-length" in response_headers


BAD_INFERS = {
    "invalid JSON": (b"{bad", (), 400, "invalid JSON"),
    "no inputs": (infer_body(), (), 400, '"inputs" must be a non-empty list'),
    "unknown input": (infer_body(tensor("z", [1], "FP32", [0.0])), (), 400, "unknown input 'z'"),
    "twice": (infer_body(tensor("seeds", [1], "INT64", [1]), tensor("seeds", [1], "INT64", [1])), (), 400, "given twice"),
    "wrong datatype": (infer_body(tensor("latent", [1, LATENT_DIM], "FP64", [0.0] * LATENT_DIM)), (), 400, "must have datatype FP32, got 'FP64'"),
    "shape and data disagree": (infer_body(tensor("seeds", [3], "INT64", [1, 2])), (), 400, "has 2 values; its shape [3] holds 3"),
    "negative dimension": (infer_body(tensor("seeds", [-1], "INT64", [1])), (), 400, '"shape" of input'),
    "wrong latent size": (infer_body(tensor("latent", [1, 3], "FP32", [0.0] * 3)), (), 400, f"shape [batch, {LATENT_DIM}], got [1, 3]"),
    "fractional seed": (infer_body(tensor("seeds", [1], "INT64", [1.5])), (), 400, "holds non-integers"),
    "negative seed": (infer_body(tensor("seeds", [1], "INT64", [-4])), (), 400, "seeds"),
    "digit out of range": (infer_body(tensor("seeds", [1], "INT64", [1]), tensor("digits", [1], "INT64", [10])), (), 400, "digit"),
    "digits without seeds": (infer_body(tensor("digits", [1], "INT64", [1])), (), 400, 'give "latent"'),
    "latent and seeds": (infer_body(latent_tensor(), tensor("seeds", [1], "INT64", [1])), (), 400, "got latent, seeds"),
    "digits of another batch": (infer_body(tensor("seeds", [2], "INT64", [1, 2]), tensor("digits", [1], "INT64", [1])), (), 400, "shape of seeds"),
    "NaN": (infer_body(tensor("latent", [1, LATENT_DIM], "FP32", [0.0] * LATENT_DIM)).replace(b"0.0", b"NaN", 1), (), 400, "NaN or Inf"),
    "beyond FP32": (infer_body(tensor("latent", [1, LATENT_DIM], "FP32", [1e39] + [0.0] * (LATENT_DIM - 1))), (), 400, "NaN or Inf"),
    "empty batch": (infer_body(tensor("seeds", [0], "INT64", [])), (), 400, "non-empty batch"),
    "batch over the cap": (infer_body(tensor("seeds", [MAX_BATCH + 1], "INT64", list(range(MAX_BATCH + 1)))), (), 400, f"exceeds this server's limit of {MAX_BATCH}"),
    "strings": (infer_body(tensor("seeds", [1], "INT64", ["1"])), (), 400, "numbers"),
    "unknown output": (infer_body(tensor("seeds", [1], "INT64", [1]), outputs=[{"name": "png"}]), (), 400, "unknown output 'png'"),
    "binary flag not a bool": (infer_body(tensor("seeds", [1], "INT64", [1]), outputs=[{"name": "images", "parameters": {"binary_data": "yes"}}]), (), 400, "true or false"),
    "id not a string": (infer_body(tensor("seeds", [1], "INT64", [1]), id=5), (), 400, '"id" must be a string'),
    "header length beyond the body": (infer_body(tensor("seeds", [1], "INT64", [1])), [(b"Inference-Header-Content-Length", b"9999")], 400, "up to the body's"),
    "header length not a number": (infer_body(tensor("seeds", [1], "INT64", [1])), [(b"Inference-Header-Content-Length", b"-3")], 400, "whole number"),
    "binary data missing": (infer_body(tensor("seeds", [2], "INT64", binary_data_size=16)), [(b"Inference-Header-Content-Length", b"%d" % len(infer_body(tensor("seeds", [2], "INT64", binary_data_size=16))))], 400, "only 0 remain"),
    "data and binary": (infer_body(tensor("seeds", [1], "INT64", [1], binary_data_size=8)), (), 400, "both"),
}


@pytest.mark.parametrize("body, headers, status, message", BAD_INFERS.values(), ids=BAD_INFERS.keys())
def test_bad_infers_are_4xx_json_errors_saying_what_is_wrong(v2, body, headers, status, message):
    got_status, response_headers, response = answer(v2, "POST", INFER, body, headers)
    assert got_status == status and response_headers[b"content-type"] == b"application/json"
    assert message in json.loads(response)["error"]


def test_binary_sizes_that_do_not_fit_the_shape_or_the_body_are_400(v2):
    seeds = np.array([1, 2], np.int64)
    body, headers = binary_request({"seeds": seeds})
    assert answer(v2, "POST", INFER, body + b"\0", headers)[0] == 400  # a byte beyond the declared inputs
    status, _, response = answer(v2, "POST", INFER, body[:-8] + b"\0" * 8, headers)
    assert status == 200  # the same length: seeds 1 and 0 are valid
    header = json.loads(body[: int(headers[0][1])])
    header["inputs"][0]["shape"] = [3]
    reshaped = json.dumps(header).encode()
    status, _, response = answer(v2, "POST", INFER, reshaped + seeds.tobytes(), [(b"Inference-Header-Content-Length", str(len(reshaped)).encode())])
    assert status == 400 and "has 16 bytes of binary data; its shape [3] of INT64 takes 24" in json.loads(response)["error"]


@pytest.mark.parametrize(
    "method, path, status, message",
    [
        ("GET", "/v2/models/other", 404, "unknown model: 'other'"),
        ("GET", "/v2/models/dcgan/versions/2", 404, "'dcgan' version 2 is not found"),
        ("GET", "/v2/models/dcgan/versions/2/ready", 404, "version 2"),
        ("POST", "/v2/models/other/infer", 404, "unknown model"),
        ("GET", "/v2/models/dcgan/versions/x", 400, "positive integer"),
        ("GET", "/v2/nothing", 404, "Open Inference Protocol routes"),
        ("GET", "/v2/models/dcgan/infer", 405, "use POST"),
        ("POST", "/v2/health/ready", 405, "use GET"),
        ("DELETE", "/v2/models/dcgan", 405, "use GET"),
    ],
)
def test_unknown_models_versions_routes_and_methods(v2, method, path, status, message):
    got_status, headers, body = answer(v2, method, path)
    assert got_status == status and message in json.loads(body)["error"]
    assert (b"allow" in headers) == (status == 405)


def test_readiness_is_503_while_draining_and_liveness_stays(session):
    health = ServerHealth()
    v2 = OpenInferenceApi(PredictionApi.of_session(session, "dcgan", 1, MAX_BATCH), health)
    health.begin_drain()
    for path in ("/v2/health/ready", "/v2/models/dcgan/ready", "/v2/models/dcgan/versions/1/ready"):
        status, _, body = answer(v2, "GET", path)
        assert status == 503 and "draining" in json.loads(body)["error"]
    assert answer(v2, "GET", "/v2/health/live")[0] == 200
    assert answer(v2, "POST", INFER, infer_body(tensor("seeds", [1], "INT64", [1])))[0] == 200  # requests still served


def test_readiness_follows_the_supervisors_state_file(session, tmp_path):
    from keras_dcgan.serving import health as health_states

    state_file = tmp_path / "state"
    v2 = OpenInferenceApi(PredictionApi.of_session(session, "dcgan", 1, MAX_BATCH), ServerHealth(state_file))
    assert answer(v2, "GET", "/v2/health/ready")[0] == 503  # no word yet: still starting
    for state, status, word in [(health_states.STARTING, 503, "loading"), (health_states.READY, 200, "ready"), (health_states.DRAINING, 503, "draining")]:
        health_states.write_state(state_file, state)
        assert answer(v2, "GET", "/v2/health/ready")[0] == status and word in answer(v2, "GET", "/v2/health/ready")[2].decode()


# -- fuzzing: any request gets an answer, never an exception ---------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
TENSORS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["latent", "seeds", "digits", "images", ""]) | JSON_VALUES,
        "datatype": st.sampled_from(["FP32", "INT64", "BYTES"]) | JSON_VALUES,
        "shape": st.lists(st.integers(-2, 40), max_size=3) | JSON_VALUES,
        "data": st.lists(st.integers(-3, 2**31) | st.floats(-1e40, 1e40), max_size=70) | JSON_VALUES,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-1, 300) | JSON_VALUES, "binary_data": JSON_VALUES}),
    },
)
REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.lists(TENSORS, max_size=3) | JSON_VALUES,
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["images", "x"]), "parameters": JSON_VALUES}), max_size=2) | JSON_VALUES,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": JSON_VALUES}) | JSON_VALUES,
        "id": JSON_VALUES,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=REQUESTS, binary=st.binary(max_size=300), header_length=st.none() | st.just("exact") | st.integers(-5, 2000) | st.text(max_size=4))
def test_fuzzed_infers_get_200_or_a_4xx_json_error(v2, request, binary, header_length):
    header = json.dumps(request).encode()
    if header_length == "exact":  # the split a client makes
        header_length = len(header)
    headers = [] if header_length is None else [(b"inference-header-content-length", str(header_length).encode())]
    status, response_headers, response = answer(v2, "POST", INFER, header + binary, headers)
    assert status == 200 or (400 <= status < 500 and "error" in json.loads(response)), (status, response)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.text(alphabet="/abcdefgilmnorstvy0129%.:?-_", max_size=40),
       method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]))
def test_fuzzed_paths_get_a_json_answer(v2, tail, method):
    status, headers, body = answer(v2, method, "/v2/" + tail, infer_body(tensor("seeds", [1], "INT64", [1])))
    assert status in (200, 400, 404, 405, 503) and headers[b"content-type"] in (b"application/json", b"application/octet-stream")


# -- tritonclient against a real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(exported_model):
    process = start_keras_dcgan_serve(exported_model.onnx_path, "--max-batch", MAX_BATCH, "--metrics")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def triton(server):
    import tritonclient.http

    client = tritonclient.http.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.mark.slow
def test_tritonclient_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("dcgan") and triton.is_model_ready("dcgan", "1")
    assert not triton.is_model_ready("dcgan", "2") and not triton.is_model_ready("other")
    metadata = triton.get_server_metadata()
    assert metadata["name"] == "keras-dcgan" and "binary_tensor_data" in metadata["extensions"]
    model = triton.get_model_metadata("dcgan", "1")
    assert [entry["name"] for entry in model["inputs"]] == ["latent", "seeds", "digits"] and model["outputs"][0]["name"] == "images"


@pytest.mark.slow
@pytest.mark.parametrize("binary_inputs", [False, True], ids=["json inputs", "binary inputs"])
def test_tritonclient_infers_equal_the_v1_predicts(triton, server, binary_inputs):
    import tritonclient.http

    def infer(arrays, binary_output=True):
        inputs = []
        for name, array in arrays.items():
            entry = tritonclient.http.InferInput(name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64")
            entry.set_data_from_numpy(array, binary_data=binary_inputs)
            inputs.append(entry)
        outputs = [tritonclient.http.InferRequestedOutput("images", binary_data=binary_output)]
        return triton.infer("dcgan", inputs, outputs=outputs).as_numpy("images")

    v1 = RestClient(server.url)
    latents = latents_from_seeds(range(5), LATENT_DIM)
    seeds, digits = np.arange(10, 15, dtype=np.int64), np.array([0, 3, 5, 7, 9], np.int64)
    np.testing.assert_array_equal(infer({"latent": latents}), v1.generate(latents))
    np.testing.assert_array_equal(infer({"latent": latents}, binary_output=False), v1.generate(latents))
    np.testing.assert_array_equal(infer({"seeds": seeds}), v1.generate_from_seeds(seeds))
    np.testing.assert_array_equal(infer({"seeds": seeds, "digits": digits}), v1.generate_digits(seeds, digits))


@pytest.mark.slow
def test_tritonclient_sees_the_servers_errors_and_the_metrics_count_v2_requests(triton, server):
    import tritonclient.http
    from tritonclient.utils import InferenceServerException

    bad = tritonclient.http.InferInput("latent", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match=rf"shape \[batch, {LATENT_DIM}\], got \[1, 3\]") as error:
        triton.infer("dcgan", [bad])
    assert error.value.status() == "400"
    with pytest.raises(InferenceServerException, match="unknown model") as error:
        triton.get_model_metadata("other")
    assert error.value.status() == "404"
    import urllib.request

    with urllib.request.urlopen(server.url + "/monitoring/prometheus/metrics") as response:
        metrics = response.read().decode()
    assert 'keras_dcgan_serve_requests_total{signature="v2/infer",status="400"}' in metrics
    assert 'keras_dcgan_serve_requests_total{signature="v2/model_metadata",status="404"}' in metrics
