"""Every command that reads an exported ONNX file checks it against its manifest the same way (GeneratorSession).

generate, latent-walk and evaluate refuse a tampered file, a truncated one and one without a
manifest with the same one-line error, and write nothing; --no-verify runs a file without one.
"""

import shutil

import pytest

from helpers import SUBSET_DIR, run_cli
from test_serving_support import run_tf_free_cli

# Each command with its output flag; evaluate's output is its report on stdout (and --json).
COMMANDS = {
    "generate": lambda onnx, out: ["generate", "--onnx", onnx, "--n", 2, "--out", out / "digits.png"],
    "latent-walk": lambda onnx, out: ["latent-walk", onnx, "--steps", 2, "--output", out / "walk.gif"],
    "evaluate": lambda onnx, out: ["evaluate", onnx, "--samples", 200, "--data-dir", SUBSET_DIR, "--json", out / "scores.json"],
}
DAMAGE = {
    "tampered": ("does not match {manifest}: SHA-256 ", lambda data: data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1 :]),
    "truncated": ("does not match {manifest}: {half} bytes, the manifest records {whole} (the file was changed or truncated", lambda data: data[: len(data) // 2]),
}


def damaged_copy(exported_model, folder, damage):
    copy = folder / "1"
    shutil.copytree(exported_model.version_dir, copy)
    onnx = copy / "generator.onnx"
    onnx.write_bytes(damage(onnx.read_bytes()))
    return onnx


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_onnx_file_is_refused_by_every_command(exported_model, tmp_path, command, damage):
    expected, change = DAMAGE[damage]
    onnx = damaged_copy(exported_model, tmp_path / "export", change)
    whole = exported_model.onnx_path.stat().st_size
    out = tmp_path / "out"
    completed = run_cli(*COMMANDS[command](onnx, out))
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.startswith(f"keras-dcgan {command}: error: {onnx} ")
    assert expected.format(manifest=onnx.parent / "manifest.json", half=whole // 2, whole=whole) in completed.stderr
    assert completed.stderr.count("\n") == 1 and completed.stdout == ""
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_an_onnx_file_without_manifest_is_refused_by_every_command(exported_model, tmp_path, command):
    bare = tmp_path / "generator.onnx"
    shutil.copy(exported_model.onnx_path, bare)
    completed = run_cli(*COMMANDS[command](bare, tmp_path / "out"))
    assert completed.returncode == 2
    assert completed.stderr == (
        f"keras-dcgan {command}: error: no manifest.json beside {bare}: it holds the file's checksum; "
        "restore it, or pass --no-verify to run the file unchecked\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_no_verify_walks_a_file_without_manifest_and_still_refuses_an_unreadable_one(exported_model, tmp_path):
    bare = tmp_path / "generator.onnx"
    data = exported_model.onnx_path.read_bytes()
    bare.write_bytes(data)
    run_tf_free_cli_checked("latent-walk", bare, "--steps", 2, "--output", tmp_path / "walk.gif", "--no-verify")
    assert (tmp_path / "walk.gif").exists() and (tmp_path / "walk.png").exists()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    completed = run_tf_free_cli("latent-walk", truncated, "--output", tmp_path / "t.gif", "--no-verify")
    assert completed.returncode == 2 and completed.stderr.startswith(f"keras-dcgan latent-walk: error: onnxruntime cannot load {truncated}: ")
    assert completed.stderr.count("\n") == 1 and not (tmp_path / "t.gif").exists()


@pytest.mark.slow
def test_evaluate_no_verify_scores_a_file_without_manifest(exported_model, subset_classifier, classifier_cache_dir, tmp_path):
    bare = tmp_path / "generator.onnx"
    shutil.copy(exported_model.onnx_path, bare)
    completed = run_cli(
        "evaluate", bare, "--no-verify", "--samples", 200, "--data-dir", SUBSET_DIR, "--cache-dir", classifier_cache_dir, check=True,
    )
    assert f"Evaluation of {bare} (onnxruntime)" in completed.stdout
    # Unverified, its manifest's record that the generator takes digits is not read either.
    assert "asked digits" not in completed.stdout


@pytest.mark.slow
def test_a_latent_walk_of_an_onnx_file_needs_no_tensorflow(exported_model, tmp_path):
    run_tf_free_cli_checked("latent-walk", exported_model.onnx_path, "--steps", 2, "--output", tmp_path / "walk.gif")
    assert (tmp_path / "walk.gif").read_bytes().startswith(b"GIF8")


def run_tf_free_cli_checked(*args):
    completed = run_tf_free_cli(*args)
    assert completed.returncode == 0, completed.stderr
    return completed
