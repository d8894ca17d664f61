"""What the training extra `keras-dcgan[train]` provides, and whether it is all installed. Standard library only.

The commands that need it (fit, export, evaluate, a latent walk of a run) check every module of
it before any work: a partial install, such as the `grpc` extra's TensorFlow without
TensorBoard, would otherwise train an epoch and fail at its first summary.
"""

import importlib.util

# import name -> the package pip installs it from, as pyproject.toml's `train` extra lists them
TRAIN_EXTRA_PACKAGES = {
    "tensorflow": "tensorflow",
    "keras": "keras",
    "tensorboard": "tensorboard",
    "tensorflow_datasets": "tensorflow-datasets",
    "importlib_resources": "importlib_resources",
    "matplotlib": "matplotlib",
    "tf2onnx": "tf2onnx",
    "onnx": "onnx",
    "onnxconverter_common": "onnxconverter-common",
}
TRAIN_EXTRA_MODULES = frozenset(TRAIN_EXTRA_PACKAGES)
INSTALL_TRAIN_EXTRA = 'pip install "keras-dcgan[train]"'


def missing_train_packages():
    """The packages of the training extra that cannot be imported here, in the extra's order."""
    return [package for module, package in TRAIN_EXTRA_PACKAGES.items() if not _importable(module)]


def missing_train_extra_message(missing):
    """One line naming the missing packages and the command that installs them."""
    verb = "is" if len(missing) == 1 else "are"
    return f"this command needs the training extra, and {', '.join(missing)} {verb} not installed: {INSTALL_TRAIN_EXTRA}"


def _importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses the name; a module imported without a spec
        return False
