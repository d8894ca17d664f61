"""Output paths are checked before the work, and an existing result is kept unless --force is passed."""

import os
import pathlib

import pytest

from helpers import read_only_folder, run_cli
from keras_dcgan.output_paths import OutputPathError, check_output_files, check_output_folder

# A folder of a real file system in which no file can be created, whatever the permission bits say, even for root.
UNWRITABLE = pathlib.Path("/proc")
needs_proc = pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs Linux's /proc")


def test_a_path_that_can_be_written_passes_and_nothing_is_created(tmp_path):
    check_output_files([tmp_path / "new" / "deeper" / "scores.json"], "--json")
    check_output_folder(tmp_path / "new" / "run", "--run-dir")
    assert list(tmp_path.iterdir()) == []  # no folder made, no probe file left


def test_an_existing_file_is_refused_unless_forced(tmp_path):
    kept = tmp_path / "scores.json"
    kept.write_text("mine")
    with pytest.raises(OutputPathError, match=rf"^--json {kept} exists; pass --force to overwrite$"):
        check_output_files([kept], "--json")
    check_output_files([kept], "--json", force=True)
    assert kept.read_text() == "mine"


def test_several_existing_files_are_counted(tmp_path):
    paths = [tmp_path / f"seed_{seed}.png" for seed in range(3)]
    for path in paths[1:]:
        path.write_bytes(b"")
    with pytest.raises(OutputPathError, match=r"seed_1.png exists \(and 1 more of the files it would write\); pass --force"):
        check_output_files(paths, "--out")


@pytest.mark.parametrize("case", ["a folder", "under a file"])
def test_a_path_that_cannot_be_a_file_is_refused(tmp_path, case):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    path, message = {
        "a folder": (tmp_path, f"--output {tmp_path} is a folder; expected a file name"),
        "under a file": (a_file / "walk.gif", f"--output {a_file / 'walk.gif'} cannot be made: {a_file} is a file, not a folder"),
    }[case]
    with pytest.raises(OutputPathError) as refusal:
        check_output_files([path], "--output", force=True)
    assert str(refusal.value) == message
    assert a_file.read_text() == "mine"


@needs_proc
def test_a_folder_where_no_file_can_be_created_is_refused_even_for_root():
    with pytest.raises(OutputPathError, match=r"^--strip /proc/s.png cannot be written: no file can be created in /proc \("):
        check_output_files([UNWRITABLE / "s.png"], "--strip")
    with pytest.raises(OutputPathError, match=r"^--run-dir /proc/x/run cannot be written: no file can be created in /proc \("):
        check_output_folder(UNWRITABLE / "x" / "run", "--run-dir")


def test_a_read_only_folder_is_refused(tmp_path):
    with read_only_folder(tmp_path) as read_only:
        with pytest.raises(OutputPathError, match=f"cannot be written: {read_only} is read-only for this user"):
            check_output_files([read_only / "x.png"], "--out")


# -- the commands ---------------------------------------------------------------------------------


def assert_one_line_error(completed, command, message):
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr == f"keras-dcgan {command}: error: {message}\n"


@needs_proc
def test_fit_refuses_a_run_dir_under_proc_at_once(tmp_path):
    completed = run_cli("fit", "--run-dir", "/proc/x", "--data-dir", tmp_path, "--epochs", 1)
    assert_one_line_error(completed, "fit", "--run-dir /proc/x cannot be written: no file can be created in /proc (No such file or directory)")


@needs_proc
def test_export_refuses_an_export_root_under_proc_before_loading_the_run(tmp_path):
    completed = run_cli("export", tmp_path / "no-run", "--out", "/proc/e")
    message = "--out /proc/e/dcgan cannot be written: no file can be created in /proc (No such file or directory)"
    assert_one_line_error(completed, "export", message)  # not the missing run dir: the export root is checked first


@pytest.mark.slow
def test_generate_keeps_an_existing_grid_and_existing_pngs_unless_forced(exported_model, tmp_path):
    onnx = exported_model.onnx_path
    grid = tmp_path / "digits.png"
    grid.write_bytes(b"an earlier result")
    assert_one_line_error(run_cli("generate", "--onnx", onnx, "--n", 2, "--out", grid), "generate", f"--out {grid} exists; pass --force to overwrite")
    assert grid.read_bytes() == b"an earlier result"
    assert run_cli("generate", "--onnx", onnx, "--n", 2, "--out", grid, "--force").returncode == 0
    assert grid.read_bytes().startswith(b"\x89PNG")

    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "seed_3.png").write_bytes(b"kept")
    completed = run_cli("generate", "--onnx", onnx, "--n", 4, "--out", folder)
    assert_one_line_error(completed, "generate", f"--out {folder / 'seed_3.png'} exists; pass --force to overwrite")
    assert sorted(os.listdir(folder)) == ["seed_3.png"]  # not one file of the run was written
    assert run_cli("generate", "--onnx", onnx, "--n", 4, "--out", folder, "--force").returncode == 0
    assert sorted(os.listdir(folder)) == ["grid.png"] + [f"seed_{seed}.png" for seed in range(4)]


@pytest.mark.slow
@needs_proc
def test_latent_walk_checks_both_outputs_before_it_writes_either(exported_model, tmp_path):
    gif = tmp_path / "walk.gif"
    completed = run_cli("latent-walk", exported_model.onnx_path, "--steps", 2, "--output", gif, "--strip", "/proc/s.png")
    assert_one_line_error(completed, "latent-walk", "--strip /proc/s.png cannot be written: no file can be created in /proc (No such file or directory)")
    assert not gif.exists()  # the GIF is not written first, only to fail at the strip

    folder_as_output = run_cli("latent-walk", exported_model.onnx_path, "--output", tmp_path)
    assert_one_line_error(folder_as_output, "latent-walk", f"--output {tmp_path} is a folder; expected a file name")
    same_file = run_cli("latent-walk", exported_model.onnx_path, "--output", tmp_path / "walk.png")
    assert_one_line_error(
        same_file, "latent-walk",
        f"--strip {tmp_path / 'walk.png'} is the --output file itself: give the GIF a .gif name, or pass another --strip",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_latent_walk_makes_missing_folders_and_keeps_existing_files_unless_forced(exported_model, tmp_path):
    gif = tmp_path / "new" / "folder" / "walk.gif"
    assert run_cli("latent-walk", exported_model.onnx_path, "--steps", 2, "--output", gif, check=True).returncode == 0
    written = {path: path.read_bytes() for path in (gif, gif.with_suffix(".png"))}
    assert_one_line_error(
        run_cli("latent-walk", exported_model.onnx_path, "--steps", 3, "--output", gif),
        "latent-walk", f"--output {gif} exists; pass --force to overwrite",
    )
    strip_only = tmp_path / "other.gif"
    assert_one_line_error(
        run_cli("latent-walk", exported_model.onnx_path, "--steps", 3, "--output", strip_only, "--strip", gif.with_suffix(".png")),
        "latent-walk", f"--strip {gif.with_suffix('.png')} exists; pass --force to overwrite",
    )
    assert {path: path.read_bytes() for path in written} == written and not strip_only.exists()
    run_cli("latent-walk", exported_model.onnx_path, "--steps", 3, "--output", gif, "--force", check=True)
    assert gif.read_bytes() != written[gif]  # 4 seeds x 3 steps, not x 2


@pytest.mark.slow
@pytest.mark.parametrize("case", ["exists", "under /proc"])
def test_evaluate_checks_its_json_before_scoring_anything(exported_model, tmp_path, case):
    if case == "under /proc" and not UNWRITABLE.is_dir():
        pytest.skip("needs Linux's /proc")
    json_path = {"exists": tmp_path / "scores.json", "under /proc": UNWRITABLE / "x.json"}[case]
    if case == "exists":
        json_path.write_text("{}")
    # A cache folder of its own: scoring would train the classifier into it first.
    cache = tmp_path / "cache"
    completed = run_cli("evaluate", exported_model.onnx_path, "--data-dir", tmp_path / "no-data", "--cache-dir", cache, "--json", json_path)
    expected = {
        "exists": f"--json {json_path} exists; pass --force to overwrite",
        "under /proc": "--json /proc/x.json cannot be written: no file can be created in /proc (No such file or directory)",
    }[case]
    assert_one_line_error(completed, "evaluate", expected)
    assert completed.stdout == "" and not cache.exists()  # refused before the data, the classifier or any sample
    if case == "exists":
        assert json_path.read_text() == "{}"
