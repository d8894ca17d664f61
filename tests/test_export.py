"""Export: TF Serving SavedModel + ONNX + LiteRT + manifest, checked with the real loaders.

One session-scoped export of the shared `trained_run_dir` (conftest.py: `exported_model`)
serves the read-only checks; tests that change things export into their own tmp_path.
"""

import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime
import pytest
from PIL import Image

from helpers import DIGIT_SAMPLES, SUBSET_DIR, read_only_folder, run_cli, small_run
from keras_dcgan import image_grid
from keras_dcgan.cli import build_parser, is_startup_noise
from keras_dcgan.cli import main as cli_main
from keras_dcgan.export import ExportError, ParityError, export_generator
from keras_dcgan.export import exporter
from keras_dcgan.export.generator_source import load_generator_source, recorded_quality
from keras_dcgan.export.manifest import sha256_of
from keras_dcgan.export.parity import keras_images
from keras_dcgan.latents import MAX_SEED, latents_from_seeds


TOLERANCE = 1e-4
LATENT_DIM = 32  # small_run's


@pytest.fixture(scope="module")
def source(trained_run_dir):
    return load_generator_source(trained_run_dir)


@pytest.fixture(scope="module")
def reference(source):
    """Keras generator outputs in [0, 1], inference mode, for seeds 0..63."""
    return keras_images(source.generator, latents_from_seeds(np.arange(64), LATENT_DIM))


def test_tensorflow_seed_latents_equal_numpy():
    from keras_dcgan.export.seed_latents import latents_from_seeds as tensorflow_latents

    rng = np.random.default_rng(4)
    seeds = np.concatenate([[0, 1, 7, MAX_SEED - 1, MAX_SEED], rng.integers(0, MAX_SEED, 2000, endpoint=True)])
    expected = latents_from_seeds(seeds, 100)
    actual = tensorflow_latents(seeds, 100).numpy()
    assert actual.dtype == np.float32 and actual.shape == (len(seeds), 100)
    assert np.max(np.abs(actual - expected)) <= 1e-7


def test_tensorflow_seed_latents_refuse_out_of_range_seeds():
    import tensorflow as tf

    from keras_dcgan.export.seed_latents import latents_from_seeds as tensorflow_latents

    for bad in (-1, MAX_SEED + 1):
        with pytest.raises(tf.errors.InvalidArgumentError, match="seeds must be in"):
            tensorflow_latents(np.array([0, bad], np.int64), 4)


@pytest.mark.slow
def test_version_folder_layout_and_manifest(exported_model, trained_run_dir):
    base_path = os.path.dirname(exported_model.version_dir)
    assert exported_model.version == 1 and os.listdir(base_path) == ["1"]  # no staging folder left
    for name in ("saved_model.pb", "variables", "generator.onnx", "generator.tflite", "manifest.json"):
        assert os.path.exists(os.path.join(exported_model.version_dir, name)), name
    manifest = json.loads(open(exported_model.manifest_path).read())
    assert manifest == exported_model.manifest
    assert manifest["format_version"] == 1 and manifest["model_name"] == "dcgan" and manifest["version"] == 1
    assert manifest["latent_dim"] == LATENT_DIM
    assert manifest["image_shape"] == [28, 28, 1] and manifest["value_range"] == [0.0, 1.0]
    assert manifest["onnx"] == {"file": "generator.onnx", "opset": 18, "input": "latent", "output": "images"}
    # generate_digits: the run's code learnt the labels (tests/test_digits.py covers it).
    assert set(manifest["signatures"]) == {"serving_default", "generate_png", "generate_from_seeds", "generate_digits"}
    assert manifest["signatures"]["generate_png"]["outputs"] == {"png_bytes": {"dtype": "string", "shape": [None]}}
    assert manifest["source"]["checkpoint"] == "generator.keras"
    assert manifest["source"]["epoch"] == 2 and manifest["source"]["step"] == 16  # 2 epochs of 512 / 64
    assert manifest["source"]["config"]["latent_dim"] == LATENT_DIM
    assert manifest["source"]["run_dir"] == str(trained_run_dir)
    assert manifest["quality"] is None  # the run was not evaluated during training (no metrics.json)
    differences = manifest["parity"]["max_abs_difference"]
    assert set(differences) >= {
        "onnx_batch_1", "onnx_batch_64", "litert_batch_1", "litert_batch_64", "saved_model_batch_1", "saved_model_batch_64",
    }
    assert all(0 <= value <= TOLERANCE for value in differences.values())

    on_disk = set()
    for directory, _, names in os.walk(exported_model.version_dir):
        on_disk.update(os.path.relpath(os.path.join(directory, name), exported_model.version_dir) for name in names)
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    for relative, described in manifest["files"].items():
        path = os.path.join(exported_model.version_dir, relative)
        assert described == {"sha256": sha256_of(path), "bytes": os.path.getsize(path)}, relative


# Blocks `import keras` (and tf_keras): find_spec still answers, so TensorFlow's own probing
# works, but loading the module fails as if it were not installed.
SAVED_MODEL_WITHOUT_KERAS = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, sys

    class BlockKeras(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("keras", "tf_keras"):
                return importlib.machinery.ModuleSpec(name, self)
        def create_module(self, spec):
            raise ImportError(f"{spec.name} is blocked in this process")
        def exec_module(self, module):
            raise ImportError("blocked")

    sys.meta_path.insert(0, BlockKeras())
    import numpy as np
    import tensorflow as tf

    model_dir, latents_path, output_path = sys.argv[1:]
    loaded = tf.saved_model.load(model_dir)
    latents = tf.constant(np.load(latents_path))
    images = loaded.signatures["serving_default"](latent=latents)["images"].numpy()
    png_bytes = loaded.signatures["generate_png"](latent=latents)["png_bytes"].numpy()
    seeds = tf.range(len(images), dtype=tf.int64)
    from_seeds = loaded.signatures["generate_from_seeds"](seeds=seeds)["images"].numpy()
    try:
        import keras
        keras_blocked = False
    except ImportError:
        keras_blocked = True
    np.savez(output_path, images=images, png_bytes=np.array(list(png_bytes), dtype=object),
             from_seeds=from_seeds, keras_loaded=any(name.split(".")[0] == "keras" for name in sys.modules),
             keras_blocked=keras_blocked)
    """
)


@pytest.mark.slow
def test_saved_model_runs_in_plain_tensorflow_without_keras(exported_model, reference, tmp_path):
    batch = 5
    latents_path, output_path = tmp_path / "latents.npy", tmp_path / "outputs.npz"
    np.save(latents_path, latents_from_seeds(np.arange(batch), LATENT_DIM))
    script = tmp_path / "load_without_keras.py"
    script.write_text(SAVED_MODEL_WITHOUT_KERAS)
    completed = subprocess.run(
        [sys.executable, str(script), exported_model.version_dir, str(latents_path), str(output_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outputs = np.load(output_path, allow_pickle=True)
    assert bool(outputs["keras_blocked"]) and not bool(outputs["keras_loaded"])

    images = outputs["images"]
    assert images.dtype == np.float32 and images.shape == (batch, 28, 28, 1)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.max(np.abs(images - reference[:batch])) <= TOLERANCE
    assert np.max(np.abs(outputs["from_seeds"] - reference[:batch])) <= TOLERANCE  # seeds 0..4, same latents

    png_bytes = outputs["png_bytes"]
    assert len(png_bytes) == batch
    for encoded, image in zip(png_bytes, images):
        decoded = Image.open(io.BytesIO(encoded))
        assert decoded.format == "PNG" and decoded.size == (28, 28) and decoded.mode == "L"
        np.testing.assert_array_equal(np.asarray(decoded), image_grid.to_uint8(image, (0.0, 1.0))[..., 0])


def _signature_blocks(saved_model_cli_output):
    blocks = {}
    for chunk in saved_model_cli_output.split("signature_def['")[1:]:
        name, body = chunk.split("']", 1)
        blocks[name] = body.split("Method name is:")[0]
    return blocks


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(exported_model):
    saved_model_cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(saved_model_cli):
        pytest.skip(f"saved_model_cli (ships with tensorflow) not found beside {sys.executable}")
    completed = subprocess.run(
        [saved_model_cli, "show", "--dir", exported_model.version_dir, "--all"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    blocks = _signature_blocks(completed.stdout)
    expected = {
        "serving_default": ("inputs['latent']", "DT_FLOAT", f"(-1, {LATENT_DIM})", "outputs['images']", "DT_FLOAT", "(-1, 28, 28, 1)"),
        "generate_png": ("inputs['latent']", "DT_FLOAT", f"(-1, {LATENT_DIM})", "outputs['png_bytes']", "DT_STRING", "(-1)"),
        "generate_from_seeds": ("inputs['seeds']", "DT_INT64", "(-1)", "outputs['images']", "DT_FLOAT", "(-1, 28, 28, 1)"),
    }
    for name, (input_name, input_dtype, input_shape, output_name, output_dtype, output_shape) in expected.items():
        assert name in blocks, f"{name} missing from saved_model_cli output:\n{completed.stdout[:3000]}"
        inputs, outputs = blocks[name].split("output(s):")
        assert input_name in inputs and f"dtype: {input_dtype}" in inputs and f"shape: {input_shape}\n" in inputs, inputs
        assert output_name in outputs and f"dtype: {output_dtype}" in outputs and f"shape: {output_shape}\n" in outputs, outputs


def _onnx_session(exported_model):
    return onnxruntime.InferenceSession(exported_model.onnx_path, providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_onnx_file_has_documented_names_and_dynamic_batch(exported_model):
    model = onnx.load(exported_model.onnx_path)
    onnx.checker.check_model(model, full_check=True)
    opset = max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    assert opset == exported_model.manifest["onnx"]["opset"] <= 18
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "latent" and graph_output.name == "images"
    input_dims = [dim.dim_param or dim.dim_value for dim in graph_input.type.tensor_type.shape.dim]
    output_dims = [dim.dim_param or dim.dim_value for dim in graph_output.type.tensor_type.shape.dim]
    assert input_dims == ["batch", LATENT_DIM] and output_dims == ["batch", 28, 28, 1]
    assert "BatchNormalization" not in {node.op_type for node in model.graph.node}  # folded: inference mode

    session = _onnx_session(exported_model)
    assert [item.name for item in session.get_inputs()] == ["latent"]
    assert [item.name for item in session.get_outputs()] == ["images"]


@pytest.mark.slow
def test_onnx_matches_keras_at_batch_1_and_64(exported_model, reference):
    session = _onnx_session(exported_model)
    latents = latents_from_seeds(np.arange(64), LATENT_DIM)
    for batch in (1, 64):
        (images,) = session.run(["images"], {"latent": latents[:batch]})
        assert images.shape == (batch, 28, 28, 1) and images.dtype == np.float32
        assert np.max(np.abs(images - reference[:batch])) <= TOLERANCE
        assert images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.slow
def test_onnx_outputs_do_not_depend_on_the_rest_of_the_batch(exported_model):
    session = _onnx_session(exported_model)
    latents = latents_from_seeds(np.arange(64), LATENT_DIM)
    others = latents_from_seeds(np.arange(1000, 1064), LATENT_DIM) * 3.0  # very different batch statistics
    others[0] = latents[0]
    (alone,) = session.run(["images"], {"latent": latents[:1]})
    (batch_a,) = session.run(["images"], {"latent": latents})
    (batch_b,) = session.run(["images"], {"latent": others})
    assert np.max(np.abs(batch_a[0] - alone[0])) <= 1e-6
    assert np.max(np.abs(batch_b[0] - alone[0])) <= 1e-6
    assert np.max(np.abs(batch_b[1] - batch_a[1])) > 1e-3  # the other members did change


def _litert_interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


def _operators(interpreter):
    return {operator["op_name"] for operator in interpreter._get_ops_details()}


@pytest.mark.slow
def test_litert_file_has_the_documented_signature_builtin_operators_only_and_a_dynamic_batch(exported_model):
    path = exported_model.version_dir / "generator.tflite"
    entry = exported_model.manifest["litert"]
    assert {key: entry[key] for key in ("file", "signature", "input", "output", "input_shape", "output_shape")} == {
        "file": "generator.tflite", "signature": "serving_default", "input": "latent", "output": "images",
        "input_shape": [None, LATENT_DIM], "output_shape": [None, 28, 28, 1],
    }
    interpreter = _litert_interpreter(path)
    operators = _operators(interpreter)
    assert not [name for name in operators if name.startswith("Flex")], operators  # builtins only: no TensorFlow ops
    assert "CONV_2D" in operators and "VAR_HANDLE" not in operators  # weights are constants, not uninitialised variables
    assert sorted(operators) == entry["operators"]
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["latent"], "outputs": ["images"]}}
    runner = interpreter.get_signature_runner("serving_default")
    assert runner.get_input_details()["latent"]["shape_signature"].tolist() == [-1, LATENT_DIM]
    assert runner.get_output_details()["images"]["shape_signature"].tolist() == [-1, 28, 28, 1]


@pytest.mark.slow
def test_litert_matches_keras_at_every_batch_size_after_resizing(exported_model, reference):
    interpreter = _litert_interpreter(exported_model.version_dir / "generator.tflite")
    (model_input,), (model_output,) = interpreter.get_input_details(), interpreter.get_output_details()
    latents = latents_from_seeds(np.arange(64), LATENT_DIM)
    for batch in (1, 64, 7, 1):  # up, down and back: resize_tensor_input must work in both directions
        interpreter.resize_tensor_input(model_input["index"], [batch, LATENT_DIM])
        interpreter.allocate_tensors()
        interpreter.set_tensor(model_input["index"], latents[:batch])
        interpreter.invoke()
        images = interpreter.get_tensor(model_output["index"])
        assert images.shape == (batch, 28, 28, 1) and images.dtype == np.float32
        assert np.max(np.abs(images - reference[:batch])) <= TOLERANCE
    differences = exported_model.manifest["parity"]["max_abs_difference"]
    assert differences["litert_batch_1"] <= TOLERANCE and differences["litert_batch_64"] <= TOLERANCE


def test_recorded_quality_of_the_exported_epoch(tmp_path):
    metrics = {
        "classifier": {"key": "abc", "test_accuracy": 0.99},
        "real_train_vs_test": {"fcd": 0.5},
        "epochs": [
            {"epoch": 1, "step": 8, "d_loss": 1.0},
            {"epoch": 2, "step": 16, "fcd": 12.5, "classifier_score": 7.5, "class_kl": 0.1, "checkerboard": 0.01, "g_loss": 2.0},
        ],
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert recorded_quality(str(tmp_path), 2) == {
        "epoch": 2, "fcd": 12.5, "classifier_score": 7.5, "class_kl": 0.1, "checkerboard": 0.01,
        "classifier": {"key": "abc", "test_accuracy": 0.99}, "real_train_vs_test": {"fcd": 0.5},
    }
    assert recorded_quality(str(tmp_path), 1) is None  # trained but not evaluated that epoch
    assert recorded_quality(str(tmp_path), None) is None  # epoch of the weights unknown
    (tmp_path / "metrics.json").write_text("{not json")
    assert recorded_quality(str(tmp_path), 2) is None


@pytest.mark.slow
def test_epoch_checkpoint_gives_that_epochs_weights(trained_run_dir, source):
    last = load_generator_source(trained_run_dir, epoch=2)
    first = load_generator_source(trained_run_dir, epoch=1)
    assert (last.checkpoint, last.epoch, last.step) == (os.path.join("checkpoints", "epoch-2"), 2, 16)
    assert (first.epoch, first.step) == (1, 8)
    for final_weight, last_weight in zip(source.generator.get_weights(), last.generator.get_weights()):
        np.testing.assert_array_equal(final_weight, last_weight)
    assert any(not np.array_equal(a, b) for a, b in zip(first.generator.get_weights(), last.generator.get_weights()))


@pytest.mark.slow
def test_epoch_checkpoint_of_a_weight_average_run_gives_the_average(evaluated_run_dir):
    import tensorflow as tf

    from keras_dcgan.networks import build_generator

    final = load_generator_source(evaluated_run_dir)
    from_checkpoint = load_generator_source(evaluated_run_dir, epoch=3)
    assert (final.epoch, final.step) == (3, 24)  # generator.keras recognised as epoch 3's weights
    for final_weight, checkpoint_weight in zip(final.generator.get_weights(), from_checkpoint.generator.get_weights()):
        np.testing.assert_allclose(checkpoint_weight, final_weight, rtol=1e-5, atol=1e-7)
    last_weights = build_generator(final.config)
    tf.train.Checkpoint(generator=last_weights).read(os.path.join(evaluated_run_dir, "checkpoints", "epoch-3")).expect_partial()
    assert not np.allclose(last_weights.get_weights()[0], from_checkpoint.generator.get_weights()[0])  # not the raw weights


@pytest.mark.slow
def test_mixed_bfloat16_run_exports_in_float32(subset_classifier, tmp_path):
    import keras

    from keras_dcgan.training import train

    before = keras.config.dtype_policy()
    train(*small_run(tmp_path / "bf16_run", precision="mixed_bfloat16", epochs=1), verbose=0)
    assert keras.config.dtype_policy().name == before.name != "mixed_bfloat16"  # training gives the process its policy back
    keras.config.set_dtype_policy("mixed_bfloat16")  # as a caller that trains in bfloat16 itself would have it
    try:
        result = export_generator(tmp_path / "bf16_run", tmp_path / "exports", data_dir=SUBSET_DIR, digit_samples=DIGIT_SAMPLES)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the export does not change it
    finally:
        keras.config.set_dtype_policy(before)
    model = onnx.load(result.onnx_path)
    # Weights float32; the integers are shapes (resize-conv's nearest upsampling is a Tile).
    assert {initializer.data_type for initializer in model.graph.initializer} <= {
        onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.INT32
    }
    assert max(result.manifest["parity"]["max_abs_difference"].values()) <= TOLERANCE


@pytest.mark.slow
def test_versions_count_up_and_existing_ones_are_refused(exported_model, trained_run_dir, subset_classifier, tmp_path):
    root = tmp_path / "exports"
    shutil.copytree(exported_model.version_dir, root / "dcgan" / "1")  # a first export, made by the fixture
    second = export_generator(trained_run_dir, root, epoch=1, data_dir=SUBSET_DIR, digit_samples=DIGIT_SAMPLES)
    assert second.version == 2 and second.manifest["version"] == 2
    assert second.manifest["source"]["checkpoint"] == os.path.join("checkpoints", "epoch-1")
    assert sorted(os.listdir(root / "dcgan")) == ["1", "2"]
    before = sha256_of(root / "dcgan" / "1" / "generator.onnx")
    for existing in (1, 2):
        with pytest.raises(ExportError, match=f"{existing} already exists; versions are never overwritten"):
            export_generator(trained_run_dir, root, version=existing, data_dir=SUBSET_DIR)
    assert sorted(os.listdir(root / "dcgan")) == ["1", "2"]
    assert sha256_of(root / "dcgan" / "1" / "generator.onnx") == before


@pytest.mark.slow
def test_interrupted_export_leaves_no_folder(trained_run_dir, tmp_path, monkeypatch):
    def interrupted(generator, latent_dim, folder, *args):
        (pathlib.Path(folder) / "saved_model.pb").write_bytes(b"half a SavedModel")
        raise KeyboardInterrupt("interrupted while writing the SavedModel")

    monkeypatch.setattr(exporter, "save_saved_model", interrupted)
    existing_base = tmp_path / "served" / "dcgan"
    (existing_base / "3").mkdir(parents=True)  # a version being served
    with pytest.raises(KeyboardInterrupt):
        export_generator(trained_run_dir, tmp_path / "served", data_dir=SUBSET_DIR)
    assert os.listdir(existing_base) == ["3"]

    with pytest.raises(KeyboardInterrupt):
        export_generator(trained_run_dir, tmp_path / "new" / "exports", data_dir=SUBSET_DIR)
    assert not (tmp_path / "new").exists()  # folders this export created are gone too


@pytest.mark.slow
def test_parity_failure_is_loud_and_leaves_nothing(trained_run_dir, tmp_path, monkeypatch):
    measure = exporter.measure_parity
    monkeypatch.setattr(exporter, "measure_parity", lambda *args, **kwargs: measure(*args, tolerance=-1.0))
    with pytest.raises(ParityError, match="differ from the Keras generator by more than -1"):
        export_generator(trained_run_dir, tmp_path / "exports", data_dir=SUBSET_DIR)
    assert not (tmp_path / "exports").exists()


@pytest.mark.slow
def test_edge_variants_are_smaller_run_and_are_recorded(trained_run_dir, subset_classifier, tmp_path):
    result = export_generator(
        trained_run_dir, tmp_path / "exports", edge_variants=True, data_dir=SUBSET_DIR, digit_samples=DIGIT_SAMPLES
    )
    _check_litert_variant(result)
    variants = result.manifest["onnx_variants"]
    assert set(variants) == {"float16", "int8"}
    float32_bytes = os.path.getsize(result.onnx_path)
    latents = latents_from_seeds(np.arange(64), LATENT_DIM)
    (float32_images,) = onnxruntime.InferenceSession(result.onnx_path, providers=["CPUExecutionProvider"]).run(
        ["images"], {"latent": latents}
    )
    for variant, described in variants.items():
        path = os.path.join(result.version_dir, described["file"])
        assert result.manifest["files"][described["file"]] == {"sha256": sha256_of(path), "bytes": os.path.getsize(path)}
        assert described["bytes"] == os.path.getsize(path) < float32_bytes, variant
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        assert [item.name for item in session.get_inputs()] == ["latent"], variant
        (images,) = session.run(["images"], {"latent": latents})
        assert images.dtype == np.float32 and images.shape == (64, 28, 28, 1), variant
        assert np.max(np.abs(images - float32_images)) == pytest.approx(described["max_abs_difference"], abs=1e-6)
    assert variants["float16"]["bytes"] < 0.6 * float32_bytes
    assert variants["float16"]["max_abs_difference"] <= 1 / 255  # no PNG pixel moves by more than one grey level
    assert variants["int8"]["max_abs_difference"] <= 0.2
    int8_ops = {node.op_type for node in onnx.load(os.path.join(result.version_dir, variants["int8"]["file"])).graph.node}
    assert "MatMulInteger" in int8_ops and "ConvInteger" not in int8_ops  # the slow int8 convolution is avoided
    # The categorical code is picked from float32 values: in float16, ties would change the digit of some seeds.
    float16_model = onnx.shape_inference.infer_shapes(onnx.load(os.path.join(result.version_dir, variants["float16"]["file"])))
    value_types = {value.name: value.type.tensor_type.elem_type for value in [*float16_model.graph.value_info, *float16_model.graph.input]}
    (argmax,) = [node for node in float16_model.graph.node if node.op_type == "ArgMax"]
    assert value_types[argmax.input[0]] == onnx.TensorProto.FLOAT


def _check_litert_variant(result):
    (variant,) = result.manifest["litert_variants"].values()
    path = os.path.join(result.version_dir, variant["file"])
    float32_path = os.path.join(result.version_dir, "generator.tflite")
    assert variant["file"] == "generator.dynamic_int8.tflite"
    assert result.manifest["files"][variant["file"]] == {"sha256": sha256_of(path), "bytes": os.path.getsize(path)}
    assert variant["bytes"] == os.path.getsize(path) < 0.5 * os.path.getsize(float32_path)
    interpreter = _litert_interpreter(path)
    assert not [name for name in _operators(interpreter) if name.startswith("Flex")]
    assert np.int8 in {tensor["dtype"] for tensor in interpreter.get_tensor_details()}  # int8 weights
    latents = latents_from_seeds(np.arange(64), LATENT_DIM)
    runner, float32_runner = (_litert_interpreter(file).get_signature_runner("serving_default") for file in (path, float32_path))
    images, float32_images = (run(latent=latents)["images"] for run in (runner, float32_runner))
    assert images.dtype == np.float32 and images.shape == (64, 28, 28, 1)
    assert np.max(np.abs(images - float32_images)) == pytest.approx(variant["max_abs_difference"], abs=1e-6)
    assert 0 < variant["max_abs_difference"] <= 0.2


def _copy_run(trained_run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run_dir, copy)
    return copy


@pytest.mark.slow
def test_run_dir_without_generator_is_refused(trained_run_dir, tmp_path):
    run_dir = _copy_run(trained_run_dir, tmp_path)
    os.remove(run_dir / "generator.keras")
    with pytest.raises(ExportError, match=r"has no generator.keras .*--epoch N .*saved epochs: \[1, 2\]"):
        export_generator(run_dir, tmp_path / "exports", data_dir=SUBSET_DIR)
    with pytest.raises(ExportError, match=r"no checkpoint for epoch 7; saved epochs: \[1, 2\]"):
        export_generator(run_dir, tmp_path / "exports", epoch=7, data_dir=SUBSET_DIR)
    with pytest.raises(ExportError, match="does not exist"):
        export_generator(tmp_path / "no-such-run", tmp_path / "exports", data_dir=SUBSET_DIR)
    assert not (tmp_path / "exports").exists()


@pytest.mark.slow
def test_corrupt_checkpoint_and_generator_are_refused(trained_run_dir, tmp_path):
    run_dir = _copy_run(trained_run_dir, tmp_path)
    data_file = run_dir / "checkpoints" / "epoch-1.data-00000-of-00001"
    with open(data_file, "r+b") as file:
        file.truncate(os.path.getsize(data_file) // 2)
    with pytest.raises(ExportError, match=r"checkpoint .*epoch-1 cannot be restored.*is it corrupt"):
        export_generator(run_dir, tmp_path / "exports", epoch=1, data_dir=SUBSET_DIR)
    (run_dir / "generator.keras").write_bytes(b"not a keras zip file")
    with pytest.raises(ExportError, match=r"generator.keras cannot be loaded.*is it corrupt"):
        export_generator(run_dir, tmp_path / "exports", data_dir=SUBSET_DIR)
    assert not (tmp_path / "exports").exists()


@pytest.mark.slow
def test_unwritable_export_root_is_refused(trained_run_dir, tmp_path):
    not_a_folder = tmp_path / "exports"
    not_a_folder.write_text("a file where the export root should be")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_generator(trained_run_dir, not_a_folder / "inner", data_dir=SUBSET_DIR)
    assert not_a_folder.read_text() == "a file where the export root should be"


@pytest.mark.slow
def test_read_only_export_root_is_refused(trained_run_dir, tmp_path):
    with read_only_folder(tmp_path) as root:
        with pytest.raises(ExportError, match="cannot create the export folder"):
            export_generator(trained_run_dir, root, data_dir=SUBSET_DIR)
        assert os.listdir(root) == []


@pytest.mark.slow
def test_bad_arguments_are_refused_before_any_work(trained_run_dir, tmp_path):
    for name in ("../escape", ".hidden", ""):
        with pytest.raises(ExportError, match="model name must be a plain folder name"):
            export_generator(trained_run_dir, tmp_path / "exports", name=name, data_dir=SUBSET_DIR)
    for version in (0, -3, "2"):
        with pytest.raises(ExportError, match="version must be a positive integer"):
            export_generator(trained_run_dir, tmp_path / "exports", version=version, data_dir=SUBSET_DIR)
    with pytest.raises(ExportError, match="epoch must be an integer of at least 1, got 0"):
        export_generator(trained_run_dir, tmp_path / "exports", epoch=0, data_dir=SUBSET_DIR)
    for samples in (0, -5, True, "200", 2.5):
        with pytest.raises(ExportError, match="digit_samples must be a positive integer"):
            export_generator(trained_run_dir, tmp_path / "exports", data_dir=SUBSET_DIR, digit_samples=samples)
    with pytest.raises(ExportError, match="digit_samples must be at least the 10 digits the generator takes, got 9"):
        export_generator(trained_run_dir, tmp_path / "exports", data_dir=SUBSET_DIR, digit_samples=9)
    assert not (tmp_path / "exports").exists()


def test_cli_scores_as_many_digit_samples_as_the_docs_quote_unless_told():
    assert build_parser().parse_args(["export", "runs/dcgan"]).digit_samples == 10_000  # docs/digits.md
    assert build_parser().parse_args(["export", "runs/dcgan", "--digit-samples", "50"]).digit_samples == 50


@pytest.mark.slow
def test_cli_prints_user_errors_and_exits_2(trained_run_dir, tmp_path, capsys):
    code = cli_main(["export", str(tmp_path / "missing-run"), "--out", str(tmp_path / "exports")])
    assert code == 2
    assert "keras-dcgan export: error: run dir" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_exports_a_checkpoint_and_prints_no_start_up_noise(trained_run_dir, subset_classifier, tmp_path):
    completed = run_cli("export", trained_run_dir, "--out", tmp_path / "exports", "--name", "digits", "--epoch", "1",
                        "--version", "7", "--data-dir", SUBSET_DIR, "--digit-samples", DIGIT_SAMPLES, check=True)
    version_dir = tmp_path / "exports" / "digits" / "7"
    assert f"Exported {os.path.join('checkpoints', 'epoch-1')} of {trained_run_dir}" in completed.stdout
    assert "as version 7" in completed.stdout and str(version_dir) in completed.stdout
    noisy = [line for line in completed.stderr.splitlines(keepends=True) if is_startup_noise(line.encode(), has_nvidia_device=False)]
    assert noisy == [], noisy
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["model_name"] == "digits" and manifest["source"]["checkpoint"] == os.path.join("checkpoints", "epoch-1")
    assert manifest["source"]["step"] == 8
    assert manifest["digits"]["asked_digits"]["samples"] == DIGIT_SAMPLES
    assert os.listdir(tmp_path / "exports" / "digits") == ["7"]
