"""TrainConfig as saved in run dirs: reading a config.json written before a field existed."""

import json

import pytest

from keras_dcgan.config import TrainConfig
from keras_dcgan.training import check_run_dir
from tests.conftest import small_config


PAPERS_NETWORKS = dict(generator_refine_convs=0, generator_output_conv=False, discriminator_refine_convs=0, categorical_code=0)
# Every config.json has had `upsampling`; before session 5 it defaulted to transpose.
OLD_UPSAMPLING = dict(upsampling="transpose")


def _write_old_config_json(run_dir, missing=tuple(PAPERS_NETWORKS)):
    """config.json of the paper's networks as written before the `missing` fields existed."""
    values = small_config(run_dir, **PAPERS_NETWORKS, **OLD_UPSAMPLING).to_dict()
    for name in missing:
        del values[name]
    (run_dir / "config.json").write_text(json.dumps(values))


def test_old_config_json_means_the_papers_networks(tmp_path):
    _write_old_config_json(tmp_path)
    loaded = TrainConfig.load(tmp_path / "config.json")
    assert {name: getattr(loaded, name) for name in PAPERS_NETWORKS} == PAPERS_NETWORKS


def test_config_json_from_before_the_discriminator_refine_option_means_none(tmp_path):
    """Session-2 run dirs have the generator's fields but not the discriminator's."""
    _write_old_config_json(tmp_path, missing=["discriminator_refine_convs"])
    assert TrainConfig.load(tmp_path / "config.json").discriminator_refine_convs == 0


def test_old_run_resumes_with_the_papers_network_flags_and_refuses_the_new_defaults(tmp_path):
    _write_old_config_json(tmp_path)
    assert check_run_dir(small_config(tmp_path, **PAPERS_NETWORKS, **OLD_UPSAMPLING))
    with pytest.raises(ValueError, match="generator_refine_convs: run dir has 0, asked for 2") as refusal:
        check_run_dir(small_config(tmp_path))
    assert "discriminator_refine_convs: run dir has 0, asked for 2" in str(refusal.value)
    assert "upsampling: run dir has 'transpose', asked for 'resize-conv'" in str(refusal.value)
    assert "categorical_code: run dir has 0, asked for 10" in str(refusal.value)


@pytest.mark.parametrize("categories", [1, 33, -1])
def test_categorical_code_must_fit_in_the_latent(categories):
    with pytest.raises(ValueError, match="categorical_code must be 0"):
        TrainConfig(latent_dim=32, categorical_code=categories)
