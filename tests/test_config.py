"""TrainConfig as saved in run dirs: reading a config.json written before a field existed."""

import json

import pytest

from keras_dcgan.config import TrainConfig
from keras_dcgan.training import check_run_dir
from tests.conftest import small_config


def _write_old_config_json(run_dir):
    """config.json as written before the generator's refine and output convolutions existed."""
    values = small_config(run_dir, generator_refine_convs=0, generator_output_conv=False).to_dict()
    del values["generator_refine_convs"], values["generator_output_conv"]
    (run_dir / "config.json").write_text(json.dumps(values))


def test_old_config_json_means_the_papers_generator(tmp_path):
    _write_old_config_json(tmp_path)
    loaded = TrainConfig.load(tmp_path / "config.json")
    assert (loaded.generator_refine_convs, loaded.generator_output_conv) == (0, False)


def test_old_run_resumes_with_the_papers_generator_flags_and_refuses_the_new_defaults(tmp_path):
    _write_old_config_json(tmp_path)
    assert check_run_dir(small_config(tmp_path, generator_refine_convs=0, generator_output_conv=False))
    with pytest.raises(ValueError, match="generator_refine_convs: run dir has 0, asked for 1"):
        check_run_dir(small_config(tmp_path))
