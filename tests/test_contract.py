"""The export contract (keras_dcgan/contract.py): what export writes is what every reader accepts and expects."""

import copy
import json

import pytest

from keras_dcgan import contract
from keras_dcgan.serving.manifest import read_manifest

# TF Serving's dtype names (the contract's) against TensorFlow's (the manifest's `signatures`, read off the SavedModel).
TENSORFLOW_DTYPES = {"DT_FLOAT": "float32", "DT_INT64": "int64", "DT_STRING": "string"}


def test_the_contract_needs_neither_tensorflow_nor_onnxruntime():
    import subprocess
    import sys

    code = (
        "import sys; import keras_dcgan.contract; "
        "loaded = [name for name in ('tensorflow', 'keras', 'onnxruntime', 'numpy') if name in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_the_export_writes_the_signatures_files_and_manifest_the_contract_declares(exported_model):
    manifest = read_manifest(exported_model.manifest_path)  # the reader accepts what export wrote
    categories = contract.manifest_digit_categories(manifest)
    assert categories == exported_model.manifest["source"]["config"]["categorical_code"] > 0
    expected = contract.signatures_of(categories)
    assert set(manifest["signatures"]) == set(expected)
    for name, signature in expected.items():
        written = manifest["signatures"][name]
        assert list(written["inputs"]) == sorted(signature.input_names), name
        for tensor in signature.inputs:
            assert written["inputs"][tensor.name]["dtype"] == TENSORFLOW_DTYPES[tensor.dtype], (name, tensor.name)
        assert list(written["outputs"]) == [signature.output.name], name
        assert written["outputs"][signature.output.name]["dtype"] == TENSORFLOW_DTYPES[signature.output.dtype], name
    assert manifest["onnx"]["file"] == contract.ONNX_FILE
    assert (manifest["onnx"]["input"], manifest["onnx"]["output"]) == (contract.MODEL_INPUT.name, contract.MODEL_OUTPUT.name)
    assert manifest["digits"]["signature"] == contract.DIGITS_SIGNATURE


def test_a_generator_that_takes_no_digits_has_no_digit_signature():
    assert contract.digit_categories(categorical_code=10, code_labels=False) == 0
    assert contract.digit_categories(categorical_code=10, code_labels=True) == 10
    assert contract.DIGITS_SIGNATURE not in contract.signatures_of(0)
    assert set(contract.signatures_of(10)) == set(contract.SIGNATURES)


@pytest.mark.slow
def test_export_refuses_to_write_a_manifest_its_readers_would_reject(exported_model, tmp_path):
    from keras_dcgan.export.manifest import write_manifest

    broken = copy.deepcopy(exported_model.manifest)
    broken["digits"]["categories"] = "ten"
    with pytest.raises(contract.ManifestError, match='digits must be an object whose "categories" is an integer >= 2'):
        write_manifest(tmp_path, broken)
    assert list(tmp_path.iterdir()) == []  # nothing half-right left for a reader
    write_manifest(tmp_path, exported_model.manifest)
    assert json.loads((tmp_path / contract.MANIFEST_NAME).read_text()) == exported_model.manifest


def test_tensor_shapes_fill_in_the_sizes_an_export_fixes():
    assert contract.LATENT.dims(latent_dim=100, image_shape=(28, 28, 1)) == [-1, 100]
    assert contract.IMAGES.dims(latent_dim=100, image_shape=(28, 28, 1)) == [-1, 28, 28, 1]
    assert contract.SEEDS.dims(latent_dim=100, image_shape=(28, 28, 1)) == [-1]
