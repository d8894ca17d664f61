"""`PredictionApi.respond` fuzzed with Hypothesis: whatever the method, path and body, a 4xx or 200 and a payload JSON can carry.

The request parts are drawn broadly (unicode paths with lone surrogates and huge numbers,
bodies of random JSON and of random bytes) around the shapes the routes expect, so that most
examples reach the checks behind the routing. The example count keeps the run to seconds.
"""

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keras_dcgan.serving import json_codec
from keras_dcgan.serving.rest_api import PredictionApi
from keras_dcgan.serving.session import GeneratorSession

SIGNATURES = ["serving_default", "generate_png", "generate_from_seeds", "generate_digits", ""]

names = st.one_of(st.just("dcgan"), st.text(max_size=20), st.text(alphabet="%0123456789abcdefABCDEF", max_size=12))
versions = st.one_of(st.integers(0, 3).map(str), st.text(alphabet="0123456789", min_size=1, max_size=6000))
suffixes = st.sampled_from(["", "/metadata", ":predict", ":classify", "/", "?q=1", "/labels/stable", "/labels/stable:predict"])
api_paths = st.builds(
    lambda name, version, suffix: f"/v1/models/{name}" + (f"/versions/{version}" if version is not None else "") + suffix,
    names, st.none() | versions, suffixes,
)
paths = st.one_of(api_paths, st.text(max_size=60), st.just("/v1/models"), st.text(max_size=30).map(lambda tail: "/v1/" + tail))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True))
latent_like = st.lists(st.lists(numbers, min_size=0, max_size=34), max_size=3)
requests = st.fixed_dictionaries(
    {},
    optional={
        "signature_name": st.one_of(st.sampled_from(SIGNATURES), st.text(max_size=10), json_values),
        "instances": st.one_of(latent_like, st.lists(st.integers(-5, 2**40), max_size=4), json_values),
        "inputs": st.one_of(latent_like, st.dictionaries(st.sampled_from(["latent", "seeds", "digits", "x"]), json_values), json_values),
    },
)
bodies = st.one_of(
    requests.map(lambda request: json.dumps(request).encode()),  # ensure_ascii: lone surrogates travel as \ud800 escapes
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def api(exported_model):
    return PredictionApi.of_session(GeneratorSession(exported_model.onnx_path), "dcgan", 1, max_batch=8)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE"]) | st.text(max_size=8), path=paths, body=bodies)
@example(method="POST", path="/v1/models/dcgan:predict", body=b'{"signature_name": "\\ud800", "instances": [[0.0]]}')
@example(method="GET", path="/v1/models/dcgan/versions/" + "9" * 5000, body=b"")
@example(method="POST", path="/v1/models/dcgan:predict", body=b'{"inputs": {"\\udfff": 1}}')
@example(method="POST", path="/v1/models/dcgan:predict", body=b'{"signature_name": ' + b"[" * 1000 + b"]" * 1000 + b"}")
def test_any_request_is_answered_4xx_or_200_with_an_encodable_payload(api, method, path, body):
    status, payload = api.respond(method, path, body)
    assert 200 <= status < 500 and status not in range(300, 400), (status, payload)
    encoded = json_codec.encode(payload)  # raises for what no JSON can carry
    if status >= 400:
        assert isinstance(json.loads(encoded)["error"], str)
