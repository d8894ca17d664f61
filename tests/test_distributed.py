"""Distributed training for real: worker processes of a MultiWorkerMirroredStrategy cluster on
127.0.0.1 started by the launcher, and MirroredStrategy over 2 logical CPU devices.

The slow tests train the small networks of `small_run` on a few hundred committed MNIST
images for 2 epochs; each spawns at most 2 TensorFlow processes at a time.
"""

import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import REPO_ROOT, run_cli, small_run
from keras_dcgan import launcher, strategy

STEP_TIMEOUT_SECONDS = 240
# Losses of two runs that differ only in how the global batch is spread over replicas agree
# to ~1 % here; a logged loss divided or multiplied by the replica count is off by 50-100 %.
# The hinge g_loss, -mean(D(G(z))), may end an epoch near 0 on another machine, where a relative
# tolerance alone would fail on noise; the small runs log |g_loss| 0.5-0.8 and d_loss about 2, so
# a mis-scaled loss still misses by 0.25 or more.
LOSS_SCALE_TOLERANCE = 0.15
LOSS_SCALE_ABSOLUTE_TOLERANCE = 0.05
WEIGHTS_LINE = re.compile(r"^\[worker (\d)\] Weights sha256: generator (\w+), discriminator (\w+) \(step (\d+)\)$", re.M)


def tensorboard_scalars(run_dir):
    """{name: [value per epoch]} from the chief's TensorBoard scalars in run_dir/logs/train."""
    import tensorflow as tf

    values = {}
    for path in sorted(pathlib.Path(run_dir, "logs", "train").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return {name: [by_step[step] for step in sorted(by_step)] for name, by_step in values.items()}


def assert_same_loss_scale(losses, reference, what):
    for name in ("d_loss", "g_loss"):
        assert len(losses[name]) == len(reference[name]) == 2, (name, losses, reference)
        np.testing.assert_allclose(
            losses[name], reference[name], rtol=LOSS_SCALE_TOLERANCE, atol=LOSS_SCALE_ABSOLUTE_TOLERANCE,
            err_msg=f"{name}: {what}",
        )


# ---------------------------------------------------------------- launcher and TF_CONFIG (fast)


def test_each_worker_gets_its_own_tf_config_and_a_failure_stops_the_others(tmp_path):
    # Worker 1 fails with code 3 once worker 0 has printed its TF_CONFIG (a marker file says
    # so: on a busy machine worker 0 may start later); worker 0 would run for a minute if not stopped.
    printed = tmp_path / "worker_0_printed"
    script = (
        "import json, os, pathlib, sys, time\n"
        "config = json.loads(os.environ['TF_CONFIG'])\n"
        "print('TF_CONFIG', json.dumps(config), flush=True)\n"
        f"printed = pathlib.Path({str(printed)!r})\n"
        "if config['task']['index'] == 0:\n"
        "    printed.touch()\n"
        "    time.sleep(60)\n"
        "deadline = time.monotonic() + 20\n"
        "while not printed.exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "sys.exit(3)\n"
    )
    output_path = tmp_path / "output.txt"
    started = time.monotonic()
    with open(output_path, "w") as output, pytest.raises(launcher.WorkerFailed) as failure:
        launcher.launch([sys.executable, "-c", script], 2, output=output, stop_grace_seconds=5)
    assert time.monotonic() - started < 30, "the launcher did not stop worker 0 promptly"
    assert failure.value.worker_index == 1 and failure.value.exit_code == 3
    assert "worker 1 exited with code 3" in str(failure.value)

    lines = output_path.read_text().splitlines()
    configs = {}
    for line in lines:
        match = re.match(r"^\[worker (\d)\] TF_CONFIG (.*)$", line)
        if match:
            configs[int(match.group(1))] = json.loads(match.group(2))
    assert sorted(configs) == [0, 1], lines
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 2 and all(address.startswith("127.0.0.1:") for address in addresses)
    for index, config in configs.items():
        assert config == {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    pids = [int(match) for match in re.findall(r"^\[launcher\] worker \d: pid (\d+)", "\n".join(lines), re.M)]
    assert len(pids) == 2
    for pid in pids:  # both reaped: neither is still running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_killed_worker_is_named_with_its_signal():
    failure = launcher.WorkerFailed(1, -signal.SIGKILL)
    assert "worker 1 was killed by SIGKILL" in str(failure) and failure.exit_code == 128 + signal.SIGKILL


def test_auto_strategy_checks_tf_config_then_gpus_then_tpu(monkeypatch):
    gpus, tpu = [], None
    monkeypatch.setattr(strategy.tf.config, "list_logical_devices", lambda kind: gpus if kind == "GPU" else [])
    monkeypatch.setattr(strategy, "_tpu_resolver", lambda: tpu)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert strategy.resolve_strategy_name("auto") == "default"
    tpu = "a resolver"
    assert strategy.resolve_strategy_name("auto") == "tpu"
    gpus = ["GPU:0", "GPU:1"]
    assert strategy.resolve_strategy_name("auto") == "mirrored"
    monkeypatch.setenv("TF_CONFIG", launcher.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert strategy.resolve_strategy_name("auto") == "multi-worker"
    assert strategy.resolve_strategy_name("default") == "default"  # an explicit choice stays


def test_worker_zero_is_the_chief_unless_the_cluster_has_one(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert strategy.is_chief()  # a single process
    monkeypatch.setenv("TF_CONFIG", launcher.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert not strategy.is_chief()
    monkeypatch.setenv("TF_CONFIG", launcher.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0))
    assert strategy.is_chief()
    with_chief = {"cluster": {"chief": ["127.0.0.1:3"], "worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(with_chief))
    assert not strategy.is_chief()


def test_the_workers_of_a_cluster_are_its_chief_and_workers(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert strategy.worker_count() == 1
    monkeypatch.setenv("TF_CONFIG", launcher.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert strategy.worker_count() == 2
    cluster = {"chief": ["127.0.0.1:3"], "worker": ["127.0.0.1:1", "127.0.0.1:2"], "ps": ["127.0.0.1:4"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert strategy.worker_count() == 3


@pytest.mark.parametrize(
    "tf_config, expected",
    [("{not json", "not valid JSON"), ('{"cluster": {}}', "must look like"),
     ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task worker 1 is not in the cluster")],
)
def test_a_bad_tf_config_is_refused_clearly(monkeypatch, tf_config, expected):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(strategy.ClusterConfigError, match=expected):
        strategy.read_tf_config()


@pytest.mark.parametrize(
    "flags, expected",
    [(["--workers", "2", "--strategy", "mirrored"], "--workers runs a multi-worker job"),
     (["--workers", "0"], "--workers must be at least 1, got 0")],
)
def test_bad_worker_flags_exit_2_with_a_message(tmp_path, flags, expected):
    completed = run_cli("fit", *flags, "--run-dir", tmp_path / "run", timeout=60)
    assert completed.returncode == 2
    assert expected in completed.stderr


# ---------------------------------------------------------------- real multi-worker runs (slow)

SHARDING_SCRIPT = """
import json
import numpy as np
import tensorflow as tf
from keras_dcgan.data import training_dataset

strategy = tf.distribute.MultiWorkerMirroredStrategy()
count, batch = 200, 32
images = np.zeros((count, 28, 28, 1), np.uint8)  # example i carries i in its first two pixels
images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(count) // 256, np.arange(count) % 256
iterator = iter(strategy.experimental_distribute_dataset(training_dataset(images, batch, seed=0)))
steps = []
for _ in range(2 * (count // batch)):
    for part in strategy.experimental_local_results(next(iterator)):
        pixels = np.round((part.numpy() + 1) * 127.5).astype(int)
        steps.append((pixels[:, 0, 0, 0] * 256 + pixels[:, 0, 1, 0]).tolist())
print("SEEN", json.dumps(steps))
"""


@pytest.mark.slow
def test_two_workers_share_every_global_batch_and_see_each_example_once_per_epoch(tmp_path):
    output_path = tmp_path / "output.txt"
    with open(output_path, "w") as output:
        launcher.launch([sys.executable, "-c", SHARDING_SCRIPT], 2, output=output)
    seen = {}
    for line in output_path.read_text().splitlines():
        match = re.match(r"^\[worker (\d)\] SEEN (.*)$", line)
        if match:
            seen[int(match.group(1))] = json.loads(match.group(2))
    assert sorted(seen) == [0, 1]
    steps_per_epoch = 200 // 32
    for worker_steps in seen.values():
        assert len(worker_steps) == 2 * steps_per_epoch
        assert all(len(batch) == 16 for batch in worker_steps), "each of 2 replicas gets half the global batch of 32"
    for epoch in range(2):
        window = slice(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch)
        per_worker = [[example for batch in seen[index][window] for example in batch] for index in (0, 1)]
        assert all(len(set(examples)) == len(examples) for examples in per_worker), "an example repeated in an epoch"
        assert not set(per_worker[0]) & set(per_worker[1]), "both workers trained on the same example"
        assert len(set(per_worker[0]) | set(per_worker[1])) == steps_per_epoch * 32


@pytest.mark.slow
def test_two_workers_end_identical_and_only_the_chief_writes(tmp_path, trained_run_dir):
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    # The job of trained_run_dir (one process), with a weight average of the generator saved at the
    # end and quality scored after epoch 2 (neither changes training, hence the losses). Only
    # the chief scores (training the missing classifier first) while the other worker waits.
    cache_dir = tmp_path / "classifier"
    run = small_run(run_dir, generator_ema=0.9, eval_every=2, eval_samples=256, cache_dir=str(cache_dir))
    completed = run_cli(
        "fit", "--workers", "2", *launcher.fit_flags(*run), env={"TMPDIR": str(scratch)}, timeout=STEP_TIMEOUT_SECONDS
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    output = completed.stdout
    for index in (0, 1):
        assert f"[worker {index}] Training with MultiWorkerMirroredStrategy: 2 replicas (2 workers); " \
               "global batch 64, 32 per replica." in output

    digests = {int(index): (generator, discriminator, int(step)) for index, generator, discriminator, step in WEIGHTS_LINE.findall(output)}
    assert sorted(digests) == [0, 1], output[-3000:]
    assert digests[0] == digests[1], "the workers ended with different weights (BatchNorm statistics included)"
    assert digests[0][2] == 16
    import keras

    from keras_dcgan.training import weights_digest

    assert weights_digest(keras.models.load_model(run_dir / "generator.keras")) == digests[0][0]

    for path in ["config.json", "generator.keras", "samples/epoch_0001.png", "samples/epoch_0002.png",
                 "samples/progress.gif", "checkpoints/epoch-2.index", "checkpoints/backup/checkpoint"]:
        assert (run_dir / path).exists(), f"the chief did not write {path}"
    assert list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    scored = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    assert [record["epoch"] for record in scored] == [1, 2] and scored[1]["fcd"] > 0 and "fcd" not in scored[0]
    cached = sorted(path.name for path in cache_dir.rglob("*") if path.is_file())
    assert cached and not [name for name in cached if ".tmp" in name], f"half-written classifier files left: {cached}"
    assert list(scratch.iterdir()) == [], "the non-chief worker left files behind in its temp dir"

    assert_same_loss_scale(tensorboard_scalars(run_dir), tensorboard_scalars(trained_run_dir),
                           "2 workers vs 1 process, same global batch")


class LauncherProcess:
    """`keras-dcgan fit --workers 2 ...` running in the background, its output collected."""

    def __init__(self, arguments, env):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_dcgan.cli", "fit", "--workers", "2", *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        )
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()

    def worker_pid(self, index, timeout):
        pattern = re.compile(rf"^\[launcher\] worker {index}: pid (\d+)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if pattern.match(line):
                    return int(pattern.match(line).group(1))
            time.sleep(0.1)
        raise AssertionError(f"the launcher never started worker {index}:\n{''.join(self.lines)}")

    def finish(self, timeout):
        returncode = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return returncode, "".join(self.lines)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_worker_stops_the_job_and_a_rerun_resumes_from_the_backup(tmp_path):
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    # 2,048 images of batch 64: 32 steps per epoch, 64 in all; a backup every 4 steps.
    arguments = launcher.fit_flags(*small_run(run_dir, max_examples=2048))
    env = {"TMPDIR": str(scratch)}

    job = LauncherProcess(arguments, env)
    try:
        worker_1 = job.worker_pid(1, timeout=30)
        backup_index = run_dir / "checkpoints" / "backup" / "checkpoint"
        wait_for(backup_index.exists, STEP_TIMEOUT_SECONDS, "the chief's first backup")
        os.kill(worker_1, signal.SIGKILL)
        returncode, output = job.finish(timeout=60)
    finally:
        if job.process.poll() is None:
            job.process.terminate()  # the launcher stops its workers on SIGTERM
            job.process.wait(timeout=30)
    assert returncode == 128 + signal.SIGKILL, output[-3000:]
    assert "keras-dcgan fit: error: worker 1 was killed by SIGKILL; stopped the other workers" in output
    assert not (run_dir / "checkpoints" / "epoch-2.index").exists(), "the kill came too late to test resuming"

    rerun = run_cli("fit", "--workers", "2", *arguments, env=env, timeout=STEP_TIMEOUT_SECONDS)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    resumed = re.findall(r"^\[worker (\d)\] Resuming .* \(step (\d+) of 64\)\.$", rerun.stdout, re.M)
    assert sorted(index for index, _ in resumed) == ["0", "1"], rerun.stdout[-3000:]
    resumed_step = int(resumed[0][1])
    assert resumed_step >= 4 and all(int(step) == resumed_step for _, step in resumed)
    assert f"Trained {64 - resumed_step} steps" in rerun.stdout
    digests = WEIGHTS_LINE.findall(rerun.stdout)
    assert len(digests) == 2 and digests[0][1:] == digests[1][1:] and digests[0][3] == "64"
    assert (run_dir / "checkpoints" / "epoch-2.index").exists()
    # TensorFlow's own autograph temp files of the killed processes stay; ours must not.
    leftovers = [path.name for path in scratch.iterdir() if path.name.startswith("keras-dcgan-")]
    assert leftovers == [], "the rerun did not clear the scratch folder the killed worker left"


PER_WORKER_FIT_SCRIPT = """
import json, os, sys
from keras_dcgan.cli import main

index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
sys.exit(main(["fit", *json.loads(sys.argv[1])[index]]))
"""


@pytest.mark.slow
def test_a_worker_that_cannot_see_the_chiefs_checkpoints_stops_the_job(tmp_path, trained_run_dir):
    # The chief resumes a finished 2-epoch run (step 16) for a third epoch; worker 1 is given
    # an empty run dir, as if the run dir were not on storage shared by both.
    chief_run_dir = tmp_path / "chief"
    shutil.copytree(trained_run_dir, chief_run_dir)
    flags = [launcher.fit_flags(*small_run(run_dir, epochs=3)) for run_dir in (chief_run_dir, tmp_path / "elsewhere")]
    output_path = tmp_path / "output.txt"
    with open(output_path, "w") as output, pytest.raises(launcher.WorkerFailed) as failure:
        launcher.launch([sys.executable, "-c", PER_WORKER_FIT_SCRIPT, json.dumps(flags)], 2, output=output)
    assert failure.value.exit_code == 2, output_path.read_text()[-3000:]
    assert "the workers would resume from different steps (0 to 16" in output_path.read_text()
    assert not (chief_run_dir / "checkpoints" / "epoch-3.index").exists()


# ---------------------------------------------------------------- MirroredStrategy (slow)

MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_dcgan.config import RunOptions, TrainConfig
from keras_dcgan.training import train

runs = json.loads(sys.argv[1])  # {name: [experiment, run options]}

def start(experiment, options, **changes):
    return train(TrainConfig(**{**experiment, **changes}), RunOptions(**options), verbose=0)

try:  # 63 images cannot be split evenly over 2 replicas
    start(*runs["mirrored"], batch_size=63)
except ValueError as error:
    print("REFUSED", error)
histories = {name: start(*run).history for name, run in runs.items()}
print("HISTORIES", json.dumps(histories))
"""


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_logs_the_same_loss_scale_as_one_device(tmp_path, subset_classifier, classifier_cache_dir):
    # --eval-every with --generator-ema too: scoring the weight average needs the strategy's scope.
    evaluation = dict(generator_ema=0.9, eval_every=2, eval_samples=256, cache_dir=classifier_cache_dir)
    runs = {
        name: [dataclasses.asdict(part) for part in small_run(tmp_path / name, strategy=name, **evaluation)]
        for name in ("mirrored", "default")
    }
    completed = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(runs)],
        capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS, cwd=REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Training with MirroredStrategy: 2 replicas; global batch 64, 32 per replica." in completed.stdout
    assert "Training with default strategy: 1 replica; global batch 64, 64 per replica." in completed.stdout
    for name in ("mirrored", "default"):  # the weight average was written out and scored under both strategies
        assert (tmp_path / name / "generator.keras").exists()
        scored = json.loads((tmp_path / name / "metrics.json").read_text())["epochs"][-1]
        assert scored["epoch"] == 2 and scored["fcd"] > 0 and "raw_fcd" in scored
    assert "REFUSED batch_size 63 is the global batch and must split evenly over the 2 replicas" in completed.stdout
    histories = json.loads(completed.stdout.split("HISTORIES ", 1)[1])
    assert_same_loss_scale(histories["mirrored"], histories["default"], "MirroredStrategy on 2 CPUs vs 1 device")
