"""The experiment and the run options: validation, config.json, and what a resumption may change."""

import json
import re

import pytest

from helpers import small_config, small_run
from keras_dcgan.config import RunOptions, TrainConfig
from keras_dcgan.run_dir import RunDir, RunDirError
from keras_dcgan.training import check_run_dir


@pytest.mark.parametrize("categories", [1, 33, -1])
def test_categorical_code_must_fit_in_the_latent(categories):
    with pytest.raises(ValueError, match="categorical_code must be 0"):
        TrainConfig(latent_dim=32, categorical_code=categories)


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(discriminator_lr=float("inf")), "discriminator_lr must be a finite positive number, got inf"),
        (dict(generator_lr=float("nan")), "generator_lr must be a finite positive number, got nan"),
        (dict(generator_lr=0.0), "generator_lr must be a finite positive number, got 0.0"),
        (dict(seed=-1), "seed must be 0 or more, got -1"),
        (dict(beta1=1.0), r"beta1 must be in \[0, 1\)"),
        (dict(learning_rate_decay=1.5), r"learning_rate_decay must be in \[0, 1\] \(a fraction of the run\), got 1.5"),
        (dict(learning_rate_decay=-0.1), r"learning_rate_decay must be in \[0, 1\]"),
        (dict(label_conditioning="sideways"), "label_conditioning must be one of classifier, projection; got 'sideways'"),
        (dict(gan_loss="wasserstein"), "gan_loss must be one of hinge, non-saturating; got 'wasserstein'"),
    ],
)
def test_invalid_experiment_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values)


@pytest.mark.parametrize(
    "values, message",
    [(dict(epochs=0), "epochs must be at least 1"), (dict(eval_every=-1), "eval_every must be 0"), (dict(strategy="gpus"), "strategy must be one of")],
)
def test_invalid_run_options_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        RunOptions(**values)


@pytest.mark.parametrize(
    "values, conditioning",
    [
        (dict(), "projection"),
        (dict(label_conditioning="classifier"), "classifier"),
        (dict(code_labels=False), "infogan"),
        (dict(categorical_code=0), None),
        (dict(categorical_code=0, label_conditioning="classifier"), None),
    ],
)
def test_the_code_conditioning_follows_the_code_and_the_labels(values, conditioning):
    assert TrainConfig(**values).code_conditioning == conditioning


def test_config_json_holds_the_experiment_only_and_reads_back(tmp_path):
    config = small_config(seed=3)
    RunDir(tmp_path).write_config(config)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "run_dir" not in saved and "epochs" not in saved and saved["seed"] == 3
    assert RunDir(tmp_path).read_config() == config


@pytest.mark.parametrize("change", ["missing", "unknown", "wrong type", "not an object"])
def test_a_config_json_that_does_not_describe_an_experiment_is_refused_in_one_line(tmp_path, change):
    values = small_config().to_dict()
    if change == "missing":
        del values["categorical_code"]
    elif change == "unknown":
        values["tuning"] = 1
    elif change == "wrong type":
        values["latent_dim"] = "many"
    else:
        values = [values]
    (tmp_path / "config.json").write_text(json.dumps(values))
    expected = {"missing": "missing field(s) categorical_code", "unknown": "unknown field(s) tuning",
                "wrong type": "latent_dim must be int, got 'many'", "not an object": "expected a JSON object"}[change]
    with pytest.raises(RunDirError, match=re.escape(expected)) as refusal:
        check_run_dir(small_config(), RunDir(tmp_path))
    assert str(tmp_path / "config.json") in str(refusal.value) and "\n" not in str(refusal.value)


def test_run_options_may_change_on_resumption_but_the_experiment_may_not(tmp_path):
    config, _ = small_run(tmp_path)
    run = RunDir(tmp_path)
    run.write_config(config)
    assert check_run_dir(small_run(tmp_path, epochs=9, data_dir="elsewhere", strategy="default", eval_every=1)[0], run)
    with pytest.raises(ValueError, match=r"batch_size: run dir has 64, asked for 32; seed: run dir has 0, asked for 1"):
        check_run_dir(small_config(seed=1, batch_size=32), run)


def test_run_dir_that_is_a_file_or_under_one_is_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        RunDir(a_file).check_writable()
    with pytest.raises(RunDirError, match=f"cannot be made: {a_file} is a file"):
        RunDir(a_file / "run").check_writable()
    RunDir(tmp_path / "new" / "run").check_writable()  # a folder that can be made is fine
    assert a_file.read_text() == "not a folder" and not (tmp_path / "new").exists()


def test_metrics_json_is_empty_until_written_and_a_broken_one_is_named(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_metrics() == {"epochs": []}
    (tmp_path / "metrics.json").write_text('{"epochs": [{"epoch": 1')
    with pytest.raises(RunDirError, match=re.escape(f"{tmp_path / 'metrics.json'} is not valid JSON")) as refusal:
        run.read_metrics()
    assert "delete it to start a new one" in str(refusal.value) and "\n" not in str(refusal.value)
