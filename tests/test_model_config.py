"""TF Serving's model config file as `keras-dcgan serve --model-config-file` reads it: policies, labels, and errors naming file, line and field."""

import pathlib

import pytest

from keras_dcgan.serving.model_config import ModelConfigError, VersionPolicy, parse_model_config, read_model_config

SHIPPED_CONFIG = pathlib.Path(__file__).resolve().parent.parent / "serving" / "models.config"


def config_text(policy="", labels=""):
    return f'model_config_list {{\n  config {{\n    name: "dcgan"\n    base_path: "/models/dcgan"\n{policy}{labels}  }}\n}}\n'


def test_the_shipped_models_config_parses_as_the_latest_two_versions():
    config = read_model_config(SHIPPED_CONFIG, "dcgan")
    assert config.policy == VersionPolicy("latest", 2)
    assert config.labels == {}
    assert config.policy.select([1, 2, 3, 7]) == {3, 7}


@pytest.mark.parametrize(
    "policy, expected, selected",
    [
        ("", VersionPolicy("latest", 1), {9}),
        ("    model_version_policy { latest { num_versions: 0 } }\n", VersionPolicy("latest", 1), {9}),  # TF Serving serves one
        ("    model_version_policy { latest { num_versions: 3 } }\n", VersionPolicy("latest", 3), {2, 5, 9}),
        ("    model_version_policy { all {} }\n", VersionPolicy("all"), {1, 2, 5, 9}),
        ("    model_version_policy { specific { versions: 2 versions: 4 } }\n", VersionPolicy("specific", versions=frozenset({2, 4})), {2}),
    ],
    ids=["no policy", "latest 0", "latest 3", "all", "specific"],
)
def test_version_policies_select_as_tensorflow_serving_does(policy, expected, selected):
    config = parse_model_config(config_text(policy), "dcgan")
    assert config.policy == expected
    assert config.policy.select([1, 2, 5, 9]) == selected


def test_version_labels_in_both_map_spellings():
    labels = '    version_labels { key: "stable" value: 1 }\n    version_labels: { key: \'canary\', value: 2 }\n'
    config = parse_model_config(config_text("    model_version_policy { specific { versions: 1 versions: 2 } }\n", labels), "dcgan")
    assert config.labels == {"stable": 1, "canary": 2}


BAD_CONFIGS = {
    "unsupported field": (config_text("    logging_config { }\n"), "f.config:5:", 'no field named "logging_config"'),
    "misspelt policy": (config_text("    model_version_policy { lastest { } }\n"), "f.config:5:", '"lastest"'),
    "two policies": (config_text("    model_version_policy { all {} latest {} }\n"), "f.config:5:", "oneof"),
    "negative count": (config_text("    model_version_policy { latest { num_versions: -2 } }\n"), "f.config:5:", "out of range"),
    "unclosed": ('model_config_list { config { name: "dcgan"', "f.config:1:", 'Expected "}"'),
    "empty specific": (config_text("    model_version_policy { specific { } }\n"), "f.config: config 'dcgan'", "specific lists no versions"),
    "negative label": (config_text("", '    version_labels { key: "stable" value: -1 }\n'), "f.config: config 'dcgan'", "'stable' maps to version -1"),
    "another model": ('model_config_list { config { name: "mnist" } }', "f.config: ", "no config with name 'dcgan' (--model-name); it lists 'mnist'"),
    "two models": ('model_config_list { config { name: "dcgan" } config { name: "b" } }', "f.config: ", "lists 2 models"),
    "empty file": ("", "f.config: ", "lists none"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_a_bad_config_is_one_error_naming_the_file_the_line_and_the_field(case):
    text, where, what = BAD_CONFIGS[case]
    with pytest.raises(ModelConfigError) as raised:
        parse_model_config(text, "dcgan", "f.config")
    message = str(raised.value)
    assert message.startswith(where) and what in message and "\n" not in message, message


def test_an_unreadable_config_file_names_it(tmp_path):
    with pytest.raises(ModelConfigError, match="cannot read the model config file .*missing.config"):
        read_model_config(tmp_path / "missing.config", "dcgan")


def test_the_declared_messages_are_tensorflow_servings_own_field_for_field():
    """The same text gives the same bytes as tensorflow-serving-api's generated ModelServerConfig (the extra keras-dcgan[grpc])."""
    from google.protobuf import text_format

    from keras_dcgan.serving.model_config import ModelServerConfig

    theirs_module = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2", reason="needs keras-dcgan[grpc]")
    text = config_text("    model_platform: 'tensorflow'\n    model_version_policy { specific { versions: 1 versions: 3 } }\n",
                       '    version_labels { key: "stable" value: 1 }\n')
    ours = text_format.Parse(text, ModelServerConfig())
    theirs = text_format.Parse(text, theirs_module.ModelServerConfig())
    assert theirs_module.ModelServerConfig.FromString(ours.SerializeToString()) == theirs
    for policy in ("latest { num_versions: 2 }", "all {}"):
        text = config_text(f"    model_version_policy {{ {policy} }}\n")
        ours = text_format.Parse(text, ModelServerConfig())
        assert theirs_module.ModelServerConfig.FromString(ours.SerializeToString()) == text_format.Parse(text, theirs_module.ModelServerConfig())
