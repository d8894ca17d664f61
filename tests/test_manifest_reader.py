"""The manifest reader over arbitrary files: a manifest that passes every field check, or ManifestError, nothing else."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import FUZZ_SETTINGS
from keras_dcgan.contract import MANIFEST_SCHEMA, ManifestError
from keras_dcgan.serving.manifest import read_manifest

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
SHA256_LIKE = st.text("0123456789abcdefABCDEF", min_size=63, max_size=65)
# Values near the ones the schema accepts, so that the fuzzer reaches every field check, not only the first.
FIELD_VALUES = {
    "latent_dim": st.integers(-2, 200) | st.booleans() | JSON_VALUES,
    "image_shape": st.lists(st.integers(-1, 30) | st.booleans(), max_size=4) | JSON_VALUES,
    "value_range": st.lists(st.sampled_from([0, 1, 0.0, 1.0, True, "0", 255]), max_size=3) | JSON_VALUES,
    "onnx": st.dictionaries(st.sampled_from(["file", "input", "output", "opset"]), st.text(max_size=8) | JSON_VALUES, max_size=4),
    "files": st.dictionaries(
        st.text(max_size=16),
        st.fixed_dictionaries({"sha256": SHA256_LIKE | JSON_VALUES, "bytes": st.integers(-2, 10**12) | JSON_VALUES}) | JSON_VALUES,
        max_size=3,
    ),
    "version": st.integers(-1, 3) | JSON_VALUES,
    "digits": st.fixed_dictionaries({"categories": st.integers(-1, 12) | JSON_VALUES}) | JSON_VALUES,
    "source": st.fixed_dictionaries({"config": JSON_VALUES}) | JSON_VALUES,
}
MANIFESTS = st.fixed_dictionaries(
    {},
    optional={key: FIELD_VALUES.get(key, JSON_VALUES) for key in MANIFEST_SCHEMA},
)


def read_or_refuse(path):
    """The manifest read from `path`, or None when it is refused with a ManifestError naming the file."""
    try:
        manifest = read_manifest(path)
    except ManifestError as error:
        assert str(path) in str(error)
        return None
    assert isinstance(manifest, dict) and all(key in manifest for key, field in MANIFEST_SCHEMA.items() if field.required)
    for key, field in MANIFEST_SCHEMA.items():
        assert key not in manifest or field.check(manifest[key]), key
    return manifest


@FUZZ_SETTINGS
@given(MANIFESTS | JSON_VALUES)
def test_any_json_document_is_a_checked_manifest_or_a_manifest_error(tmp_path_factory, document):
    path = tmp_path_factory.getbasetemp() / "fuzz-manifest.json"
    path.write_text(json.dumps(document))
    read_or_refuse(path)


@FUZZ_SETTINGS
@given(st.binary(max_size=200) | st.text(max_size=100).map(lambda text: text.encode("utf-16")))
def test_any_bytes_are_a_checked_manifest_or_a_manifest_error(tmp_path_factory, content):
    path = tmp_path_factory.getbasetemp() / "fuzz-manifest.json"
    path.write_bytes(content)
    read_or_refuse(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"latent_dim": "\xff"}', "is not UTF-8 text"),
        (b"[" * 100_000, "nested too deeply"),
    ],
    ids=["not UTF-8", "nested too deeply"],
)
def test_what_the_json_parser_itself_refuses_is_a_manifest_error(tmp_path, content, message):
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=f"cannot read manifest {path}: .*{message}"):
        read_manifest(path)
