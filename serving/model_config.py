"""TF Serving's model config file (`--model_config_file`, a text-format ModelServerConfig) for `keras-dcgan serve`.

    config = read_model_config("serving/models.config", "dcgan")
    config.policy.select([1, 2, 3])        # the versions to serve: {2, 3} under latest { num_versions: 2 }
    config.labels                          # {"stable": 2, "canary": 3}

The file is parsed by protobuf's own text-format parser over the messages of TF Serving's
model_server_config.proto and file_system_storage_path_source.proto, declared here as
descriptors, so the serving side needs neither TensorFlow nor tensorflow-serving-api. Only the
fields this server acts on are declared (name, base_path, model_platform, model_version_policy,
version_labels): any other field is refused with its line, never silently ignored.

`base_path` and `model_platform` are read and not used: `--model-base-path` names the folder,
so a file written for the TF Serving container (base_path /models/dcgan) serves as it is.
"""

import pathlib
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

SUPPORTED_FIELDS = "name, base_path, model_platform, model_version_policy (latest, all, specific) and version_labels"
_PACKAGE = "tensorflow.serving"


class ModelConfigError(ValueError):
    """The model config file is unreadable, not valid text format, or asks for what this server cannot do."""


@dataclass(frozen=True)
class VersionPolicy:
    """Which version folders to serve: TF Serving's ServableVersionPolicy."""

    kind: str = "latest"  # "latest", "all" or "specific"
    num_versions: int = 1  # for latest
    versions: frozenset = frozenset()  # for specific

    def select(self, available):
        """The versions to serve among `available` (version numbers of complete folders)."""
        if self.kind == "all":
            return set(available)
        if self.kind == "specific":
            return self.versions & set(available)
        return set(sorted(available)[-self.num_versions :]) if available else set()

    def describe(self):
        if self.kind == "all":
            return "all versions"
        if self.kind == "specific":
            return "versions " + ", ".join(map(str, sorted(self.versions)))
        return "the latest version" if self.num_versions == 1 else f"the latest {self.num_versions} versions"


@dataclass(frozen=True)
class ModelConfig:
    """One model's policy and labels; `path` is the file it came from (None: the defaults, no file)."""

    name: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict = field(default_factory=dict)  # label -> version
    path: str = None


def _message(name, *fields, nested=(), oneofs=(), map_entry=False):
    """A DescriptorProto; each field is (name, number, type, label, type_name or None, oneof index or None)."""
    message = descriptor_pb2.DescriptorProto(name=name)
    message.nested_type.extend(nested)
    message.oneof_decl.extend(descriptor_pb2.OneofDescriptorProto(name=oneof) for oneof in oneofs)
    if map_entry:
        message.options.map_entry = True
    for field_name, number, kind, label, type_name, oneof in fields:
        declared = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            declared.type_name = type_name
        if oneof is not None:
            declared.oneof_index = oneof
    return message


def _declare_messages():
    """ModelServerConfig and the messages it holds, with TF Serving's field names and numbers."""
    F = descriptor_pb2.FieldDescriptorProto
    optional, repeated = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    policy = f".{_PACKAGE}.FileSystemStoragePathSourceConfig.ServableVersionPolicy"
    version_policy = _message(
        "ServableVersionPolicy",
        ("latest", 100, F.TYPE_MESSAGE, optional, f"{policy}.Latest", 0),
        ("all", 101, F.TYPE_MESSAGE, optional, f"{policy}.All", 0),
        ("specific", 102, F.TYPE_MESSAGE, optional, f"{policy}.Specific", 0),
        nested=[
            _message("Latest", ("num_versions", 1, F.TYPE_UINT32, optional, None, None)),
            _message("All"),
            _message("Specific", ("versions", 1, F.TYPE_INT64, repeated, None, None)),
        ],
        oneofs=["policy_choice"],
    )
    model_config = _message(
        "ModelConfig",
        ("name", 1, F.TYPE_STRING, optional, None, None),
        ("base_path", 2, F.TYPE_STRING, optional, None, None),
        ("model_platform", 4, F.TYPE_STRING, optional, None, None),
        ("model_version_policy", 7, F.TYPE_MESSAGE, optional, policy, None),
        ("version_labels", 8, F.TYPE_MESSAGE, repeated, f".{_PACKAGE}.ModelConfig.VersionLabelsEntry", None),
        nested=[
            _message(
                "VersionLabelsEntry",
                ("key", 1, F.TYPE_STRING, optional, None, None),
                ("value", 2, F.TYPE_INT64, optional, None, None),
                map_entry=True,
            )
        ],
    )
    source_config = _message("FileSystemStoragePathSourceConfig", nested=[version_policy])
    config_list = _message("ModelConfigList", ("config", 1, F.TYPE_MESSAGE, repeated, f".{_PACKAGE}.ModelConfig", None))
    server_config = _message(
        "ModelServerConfig", ("model_config_list", 1, F.TYPE_MESSAGE, optional, f".{_PACKAGE}.ModelConfigList", 0), oneofs=["config"]
    )
    file = descriptor_pb2.FileDescriptorProto(name="keras_dcgan/model_server_config.proto", package=_PACKAGE, syntax="proto3")
    file.message_type.extend([source_config, model_config, config_list, server_config])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ModelServerConfig"))


ModelServerConfig = _declare_messages()


def parse_model_config(text, model_name, path="<model config>"):
    """The ModelConfig of `model_name` in the text-format ModelServerConfig `text`; ModelConfigError naming `path`."""
    message = ModelServerConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        where = f"{path}:{error.GetLine()}:{error.GetColumn()}" if error.GetLine() else path
        hint = f" (keras-dcgan serve reads {SUPPORTED_FIELDS})" if "has no field named" in str(error) else ""
        raise ModelConfigError(f"{where}: {_without_position(error)}{hint}") from None
    entries = list(message.model_config_list.config)
    names = [entry.name for entry in entries]
    if model_name not in names:
        listed = ", ".join(repr(name) for name in names) or "none"
        raise ModelConfigError(f"{path}: model_config_list has no config with name {model_name!r} (--model-name); it lists {listed}")
    if len(entries) > 1:
        raise ModelConfigError(f"{path}: model_config_list lists {len(entries)} models ({', '.join(names)}); keras-dcgan serve serves one")
    entry = entries[0]
    where = f"{path}: config {model_name!r}"
    return ModelConfig(model_name, _policy(entry.model_version_policy, where), _labels(entry.version_labels, where), str(path))


def read_model_config(path, model_name):
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelConfigError(f"cannot read the model config file {path}: {getattr(error, 'strerror', None) or error}") from None
    return parse_model_config(text, model_name, path)


def _policy(message, where):
    choice = message.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        versions = frozenset(message.specific.versions)
        if not versions:
            raise ModelConfigError(f"{where}: model_version_policy.specific lists no versions (add versions: N)")
        if min(versions) < 0:
            raise ModelConfigError(f"{where}: model_version_policy.specific.versions must be >= 0, got {min(versions)}")
        return VersionPolicy("specific", versions=versions)
    # TF Serving serves at least one version under latest { num_versions: 0 }, and latest 1 without a policy.
    return VersionPolicy("latest", max(message.latest.num_versions, 1) if choice == "latest" else 1)


def _labels(entries, where):
    labels = dict(entries)
    for label, version in labels.items():
        if not label:
            raise ModelConfigError(f"{where}: version_labels has an empty key")
        if version < 0:
            raise ModelConfigError(f"{where}: version_labels {label!r} maps to version {version}; versions are >= 0")
    return labels


def _without_position(error):
    """ParseError's message without the "line:column : " it starts with (the caller puts the file's name before it)."""
    message = str(error)
    head, separator, rest = message.partition(" : ")
    return rest if separator and head.replace(":", "").isdigit() else message
