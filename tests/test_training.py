"""`train()` end to end: the run directory, resuming, refusing conflicts, divergence."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import REPO_ROOT, SUBSET_DIR, small_run
from keras_dcgan import data
from keras_dcgan.callbacks import TrainingDiverged
from keras_dcgan.training import train

pytestmark = pytest.mark.slow
STEPS_PER_EPOCH = 512 // 64  # small_run: 512 examples, batch 64


def _event_tags(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    return set(tags.get("tensors", [])) | set(tags.get("images", []))


def test_run_directory_holds_every_artefact(trained_run_dir):
    saved = json.loads((trained_run_dir / "config.json").read_text())
    assert saved["latent_dim"] == 32 and "epochs" not in saved  # the experiment, not how long it ran
    checkpoints = trained_run_dir / "checkpoints"
    assert (checkpoints / "epoch-1.index").exists() and (checkpoints / "epoch-2.index").exists()
    assert list((checkpoints / "backup").glob("step-*.index"))
    for epoch in (1, 2):
        grid = Image.open(trained_run_dir / "samples" / f"epoch_{epoch:04d}.png")
        assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 images of 28 px with 2 px gaps
    gif = Image.open(trained_run_dir / "samples" / "progress.gif")
    assert gif.n_frames == 2
    assert {"d_loss", "g_loss", "real_score", "fake_score"} <= _event_tags(trained_run_dir / "logs" / "train")
    assert "samples" in _event_tags(trained_run_dir / "logs" / "samples")
    generator = keras.saving.load_model(trained_run_dir / "generator.keras")
    images = generator(np.zeros((2, 32), np.float32), training=False).numpy()
    assert images.shape == (2, 28, 28, 1)
    # Nothing half-written left behind.
    assert not [path for path in trained_run_dir.rglob("*") if ".tmp" in path.name]


def test_rerun_with_more_epochs_resumes_from_the_saved_step(trained_run_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run_dir, run_dir)
    result = train(*small_run(run_dir, epochs=3), verbose=0)
    assert result.start_step == 2 * STEPS_PER_EPOCH
    assert result.final_step == 3 * STEPS_PER_EPOCH
    assert (run_dir / "checkpoints" / "epoch-3.index").exists()


def test_finished_run_rerun_trains_nothing(trained_run_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run_dir, run_dir)
    result = train(*small_run(run_dir), verbose=0)
    assert result.start_step == result.final_step == 2 * STEPS_PER_EPOCH


def test_conflicting_config_is_refused_naming_the_fields(trained_run_dir):
    with pytest.raises(ValueError, match=r"batch_size: run dir has 64, asked for 32.*latent_dim: run dir has 32, asked for 16"):
        train(*small_run(trained_run_dir, batch_size=32, latent_dim=16), verbose=0)


def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(trained_run_dir, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run_dir, run_dir)
    good_checkpoint = (run_dir / "checkpoints" / "epoch-2.data-00000-of-00001").read_bytes()
    backups_before = sorted(path.name for path in (run_dir / "checkpoints" / "backup").iterdir())
    original = data.scale_images
    monkeypatch.setattr(data, "scale_images", lambda images: original(images) * float("nan"))

    with pytest.raises(TrainingDiverged, match=r"diverged at step 17: d_loss=nan"):
        train(*small_run(run_dir, epochs=3), verbose=0)

    assert (run_dir / "checkpoints" / "epoch-2.data-00000-of-00001").read_bytes() == good_checkpoint
    assert not (run_dir / "checkpoints" / "epoch-3.index").exists()
    assert sorted(path.name for path in (run_dir / "checkpoints" / "backup").iterdir()) == backups_before


def _fit_command(run_dir):
    return [
        sys.executable, "-m", "keras_dcgan.cli", "fit", "--data-dir", str(SUBSET_DIR), "--run-dir", str(run_dir),
        "--epochs", "3", "--batch-size", "32", "--latent-dim", "16", "--generator-filters", "8",
        "--discriminator-filters", "8", "--backup-every-steps", "10",
    ]


def test_sigkilled_run_resumes_from_its_last_backup(tmp_path):
    run_dir = tmp_path / "run"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        _fit_command(run_dir), cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    backups = run_dir / "checkpoints" / "backup"
    # TensorFlow writes a backup's data and index first and then, atomically, the `checkpoint`
    # state file that names it, which is what a rerun resumes from: a kill between the two
    # loses that backup (the contract allows it), so wait for the state file, not the index.
    state_file = backups / "checkpoint"
    deadline = time.monotonic() + 240
    try:
        while not state_file.exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no backup written within 240 s"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "generator.keras").exists()
    killed_at = int(re.search(r'model_checkpoint_path: "step-(\d+)"', state_file.read_text()).group(1))
    assert 0 < killed_at < 3 * (3000 // 32)

    resumed = subprocess.run(
        _fit_command(run_dir), cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_from = re.search(r"Resuming .* \(step (\d+) of (\d+)\)", resumed.stdout)
    assert resumed_from, resumed.stdout[-2000:]
    assert int(resumed_from.group(1)) >= killed_at  # continued from the newest named backup, not started over
    assert (run_dir / "generator.keras").exists()
    assert (run_dir / "checkpoints" / "epoch-3.index").exists()
