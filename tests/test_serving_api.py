"""The REST API's transport-free core, `PredictionApi.respond`, on a real export: bad requests and TF Serving compatibility.

Every case here is one call of `respond(method, path, body)`; test_serving_http.py sends a
few of the same requests over a real socket to check that the server passes them through.
"""

import json
import pathlib

import numpy as np
import pytest

from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.serving.rest_api import PredictionApi
from keras_dcgan.serving.session import GeneratorSession

MAX_BATCH = 64
PREDICT = "/v1/models/dcgan:predict"
LATENT_ROW = [0.0] * 32
DOCS_PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "rest-server.md"


@pytest.fixture(scope="module")
def api(exported_model):
    return PredictionApi.of_session(GeneratorSession(exported_model.onnx_path), "dcgan", 1, MAX_BATCH)


def respond(api, method, path, body=None):
    status, payload = api.respond(method, path, body.encode() if isinstance(body, str) else (body or b""))
    return status, json.loads(json.dumps(payload, default=lambda array: array.tolist()))  # as a client would read it


def predict_body(**fields):
    return json.dumps(fields)


BAD_REQUESTS = {
    "invalid JSON": ("POST", PREDICT, "{bad", 400, "invalid JSON"),
    "not UTF-8": ("POST", PREDICT, b'{"instances": "\xff"}', 400, "invalid JSON"),
    "not an object": ("POST", PREDICT, "[1, 2]", 400, "must be a JSON object"),
    "nested too deeply": ("POST", PREDICT, '{"instances": ' + "[" * 50_000 + "]" * 50_000 + "}", 400, "nested too deeply"),
    "no instances or inputs": ("POST", PREDICT, "{}", 400, 'exactly one of "instances"'),
    "both formats": ("POST", PREDICT, predict_body(instances=[LATENT_ROW], inputs=[LATENT_ROW]), 400, "exactly one of"),
    "wrong shape": ("POST", PREDICT, predict_body(instances=[[0.0] * 31]), 400, "shape [batch, 32], got [1, 31]"),
    "ragged rows": ("POST", PREDICT, predict_body(instances=[LATENT_ROW, [0.0]]), 400, "not a rectangular array"),
    "strings": ("POST", PREDICT, predict_body(instances=[["0.5"] * 32]), 400, "must be a rectangular array of numbers"),
    "booleans": ("POST", PREDICT, predict_body(inputs=[[True] * 32]), 400, "got booleans"),
    "NaN": ("POST", PREDICT, '{"instances": [[NaN' + ", 0.0" * 31 + "]]}", 400, "NaN or Inf"),
    "Infinity": ("POST", PREDICT, '{"inputs": {"latent": [[1e999' + ", 0.0" * 31 + "]]}}", 400, "NaN or Inf"),
    "finite latent out of range": ("POST", PREDICT, predict_body(instances=[[1e38] * 32]), 400, "within ±1e+06"),
    "latent out of range for a PNG": ("POST", PREDICT, predict_body(signature_name="generate_png", instances=[[-2e6] * 32]), 400, "within ±1e+06"),
    "columnar without the input name": ("POST", PREDICT, predict_body(inputs={"z": [LATENT_ROW]}), 400, 'must have the key "latent"'),
    "row objects with another key": ("POST", PREDICT, predict_body(instances=[{"z": LATENT_ROW}]), 400, 'exactly the key "latent"'),
    "empty batch": ("POST", PREDICT, predict_body(instances=[]), 400, "non-empty batch"),
    "scalar batch": ("POST", PREDICT, predict_body(inputs=3), 400, "non-empty batch"),
    "batch over limit": ("POST", PREDICT, predict_body(instances=[LATENT_ROW] * (MAX_BATCH + 1)), 400, "batch of 65 exceeds"),
    "negative seed": ("POST", PREDICT, predict_body(signature_name="generate_from_seeds", instances=[-1]), 400, "seeds must be"),
    "fractional seed": ("POST", PREDICT, predict_body(signature_name="generate_from_seeds", inputs=[1.5]), 400, "integers"),
    "huge seed": ("POST", PREDICT, predict_body(signature_name="generate_from_seeds", inputs=[10**30]), 400, "seeds"),
    "unknown signature": ("POST", PREDICT, predict_body(signature_name="nope", instances=[LATENT_ROW]), 400, '"nope" not found'),
    "signature not a string": ("POST", PREDICT, predict_body(signature_name=["x"], instances=[LATENT_ROW]), 400, "not found"),
    "unknown model": ("POST", "/v1/models/other:predict", predict_body(instances=[LATENT_ROW]), 404, "Servable not found for request: Latest(other)"),
    "unknown version": ("GET", "/v1/models/dcgan/versions/7", None, 404, "Specific(dcgan, 7)"),
    "path outside the API": ("GET", "/v2/anything", None, 404, "Not found: /v2/anything"),
    "path traversal": ("GET", "/v1/models/../../etc/passwd", None, 400, "Malformed request"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_request_gets_a_json_4xx(api, case):
    method, path, body, expected_status, message = BAD_REQUESTS[case]
    status, payload = respond(api, method, path, body)
    assert (status, set(payload)) == (expected_status, {"error"}), payload
    assert message in payload["error"], payload


def test_a_good_request_after_the_bad_ones_still_answers(api, exported_model):
    for method, path, body, _, _ in BAD_REQUESTS.values():
        respond(api, method, path, body)
    latents = latents_from_seeds([3], 32)
    status, payload = respond(api, "POST", PREDICT, predict_body(instances=latents.tolist()))
    assert status == 200
    np.testing.assert_array_equal(np.asarray(payload["predictions"], np.float32), GeneratorSession(exported_model.onnx_path).generate(latents))


# -- TF Serving compatibility -----------------------------------------------------------------------
# Each row: a request, TF Serving's status and the keys of its JSON answer (from its REST handler:
# http_rest_api_handler.cc, json_tensor.cc, api_rest.md), and what this server answers when it differs
# on purpose. Every deliberate difference must be listed on docs/rest-server.md under its key.

ROW = predict_body(instances=[LATENT_ROW])
COMPATIBILITY = [
    # (name, method, path, body, TF Serving status, TF Serving JSON keys, difference: None or (status, keys, doc key))
    ("empty signature_name is serving_default", "POST", PREDICT, predict_body(signature_name="", instances=[LATENT_ROW]), 200, {"predictions"}, None),
    ("status through a version label ignores the label", "GET", "/v1/models/dcgan/labels/stable", None, 200, {"model_version_status"}, None),
    ("predict through an unknown version label", "POST", "/v1/models/dcgan/labels/stable:predict", ROW, 400, {"error"}, None),
    ("metadata through an unknown version label", "GET", "/v1/models/dcgan/labels/canary/metadata", None, 400, {"error"}, None),
    ("wrong method on predict", "GET", PREDICT, None, 400, {"error"}, None),
    ("wrong method on status", "POST", "/v1/models/dcgan", "{}", 400, {"error"}, None),
    ("DELETE", "DELETE", "/v1/models/dcgan/metadata", None, 400, {"error"}, None),
    ("unknown method", "BREW", "/v1/models/dcgan", None, 400, {"error"}, None),
    ("version that is not a number", "GET", "/v1/models/dcgan/versions/abc", None, 400, {"error"}, None),
    ("classify is not a predict route here", "POST", "/v1/models/dcgan:classify", ROW, 400, {"error"}, None),
    ("no model name", "GET", "/v1/models", None, 400, {"error"}, None),
    ("JSON is parsed before the model is looked up", "POST", "/v1/models/other:predict", "{bad", 400, {"error"}, None),
    ("version with a leading zero", "GET", "/v1/models/dcgan/versions/01", None, 200, {"model_version_status"}, None),
    ("predict with a leading-zero version", "POST", "/v1/models/dcgan/versions/001:predict", ROW, 200, {"predictions"}, None),
    ("paths match case-insensitively", "GET", "/V1/Models/dcgan/METADATA", None, 200, {"model_spec", "metadata"}, None),
    ("the model name is URL-decoded", "POST", "/v1/models/dc%67an:predict", ROW, 200, {"predictions"}, None),
    ("extra keys in columnar inputs are ignored", "POST", PREDICT, predict_body(inputs={"latent": [LATENT_ROW], "note": 1}), 200, {"outputs"}, None),
    ("a query string is ignored", "GET", "/v1/models/dcgan?verbose=1", None, 200, {"model_version_status"}, None),
    ("unknown model", "GET", "/v1/models/other", None, 404, {"error"}, None),
    ("unknown version", "POST", "/v1/models/dcgan/versions/2:predict", ROW, 404, {"error"}, None),
    # Deliberate differences:
    ("batch above the server's cap", "POST", PREDICT, predict_body(instances=[LATENT_ROW] * (MAX_BATCH + 1)), 200, {"predictions"},
     (400, {"error"}, "batch cap")),
    ("NaN latent", "POST", PREDICT, '{"instances": [[NaN' + ", 0.0" * 31 + "]]}", 200, {"predictions"}, (400, {"error"}, "non-finite latents")),
    ("latent values above the bound", "POST", PREDICT, predict_body(instances=[[1e38] * 32]), 200, {"predictions"}, (400, {"error"}, "latent bound")),
]


@pytest.mark.parametrize("row", COMPATIBILITY, ids=[row[0] for row in COMPATIBILITY])
def test_answers_as_tensorflow_serving_does_or_as_documented(api, row):
    name, method, path, body, tf_status, tf_keys, difference = row
    expected_status, expected_keys = (tf_status, tf_keys) if difference is None else difference[:2]
    status, payload = respond(api, method, path, body)
    assert (status, set(payload)) == (expected_status, expected_keys), payload
    if difference is not None:
        assert f"**{difference[2]}**" in DOCS_PAGE.read_text(), f"docs/rest-server.md does not list the difference {difference[2]!r}"


def test_tensorflow_serving_error_messages_where_clients_match_on_them(api):
    assert respond(api, "GET", PREDICT)[1]["error"] == f"Malformed request: GET {PREDICT}"
    assert respond(api, "POST", "/v1/models/dcgan/labels/stable:predict", ROW)[1]["error"] == "Unrecognized servable version label: stable"
    assert respond(api, "GET", "/v1/models")[1]["error"] == "Missing model name in request."
    assert respond(api, "POST", PREDICT, predict_body(signature_name="x", instances=[LATENT_ROW]))[1]["error"].startswith(
        'Serving signature name: "x" not found in signature def'
    )


def log_model_api(folder):
    """The API over a model whose output is log(latent): NaN for a negative latent, which the latent checks accept."""
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 28, 28, 1])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["latent", "shape"], ["flat"]), helper.make_node("Log", ["flat"], ["images"])],
        "log_of_latent",
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 28, 28, 1])],
        [shape],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), folder / "log.onnx")
    return PredictionApi.of_session(GeneratorSession(folder / "log.onnx", verify=False), "log", 1, MAX_BATCH)


def test_a_model_output_that_is_not_finite_is_refused(tmp_path):
    """A model that overflows for accepted latents still never answers 200 with NaN: the output is checked too."""
    api = log_model_api(tmp_path)
    assert respond(api, "POST", "/v1/models/log:predict", predict_body(instances=[[1.0] * 784]))[0] == 200
    status, payload = respond(api, "POST", "/v1/models/log:predict", predict_body(instances=[[1.0] * 784, [-1.0] * 784]))
    assert status == 400 and "output is not finite (NaN or Inf) for latent row(s) [1]" in payload["error"]
    status, payload = respond(api, "POST", "/v1/models/log:predict", predict_body(signature_name="generate_png", instances=[[-1.0] * 784]))
    assert status == 400 and "not finite" in payload["error"]


def test_requests_sharing_one_model_call_are_answered_and_checked_each_on_its_own_rows(tmp_path):
    api = log_model_api(tmp_path)
    bodies = [
        predict_body(instances=[[2.0] * 784]),
        predict_body(instances=[[1.0] * 784, [-1.0] * 784]),  # its second row is NaN
        predict_body(signature_name="generate_png", inputs=[[1.0] * 784, [3.0] * 784, [0.5] * 784]),
        "{bad",  # refused by `begin`: it never reaches the model
    ]
    begun = [api.begin("POST", "/v1/models/log:predict", body.encode()) for body in bodies]
    assert begun[3][0] == 400 and "invalid JSON" in begun[3][1]["error"]
    first, second, third = api.complete(begun[:3])
    assert first[0] == 200 and np.allclose(np.asarray(first[1]["predictions"]), np.log(2.0))
    assert second[0] == 400 and "for latent row(s) [1]" in second[1]["error"]  # the row within its own request
    assert third[0] == 200 and len(third[1]["outputs"]) == 3 and all("b64" in png for png in third[1]["outputs"])
