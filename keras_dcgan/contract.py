"""The export contract: what `keras-dcgan export` writes and what every reader of an export relies on.

Standard library only, so that a device, a browser bundle's builder and the training side all
import the same declarations: export writes what this module declares (file names, signatures
with their tensors, the manifest and its schema), and `serve`, the clients, `GeneratorSession`
and `evaluate` read the same declarations. `check_manifest` is run by the exporter before it
writes a manifest and by every reader after it reads one, so an export cannot write a manifest
its readers reject.

A version folder `<base path>/<model name>/<version>/` holds:

    saved_model.pb, variables/, ...   TF Serving's SavedModel, with the signatures of SIGNATURES
    generator.onnx                    latent -> images, for onnxruntime
    generator.tflite                  latent -> images, for LiteRT (signature serving_default)
    manifest.json                     MANIFEST_SCHEMA: what is in the folder, and its checksums

The digit rule: only a generator whose categorical code learnt the training labels takes digits
(`digit_categories`); its export records them in the manifest's `digits` entry and has the
signature `generate_digits` (keras_dcgan/digits.py says how a digit moves the latent).
"""

import json
import numbers
import re
from dataclasses import dataclass

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
ONNX_FILE = "generator.onnx"
LITERT_FILE = "generator.tflite"
MODEL_FILE_SUFFIXES = (".onnx", ".tflite")  # the files a device runs, each by its own runtime (serving/runtimes.py)
# The manifest's entries that name each file a device runs, and how it is run; also the names of
# `serve --runtime`, whose first is the default.
ONNX_ENTRY, LITERT_ENTRY = "onnx", "litert"
MODEL_FILE_ENTRIES = (ONNX_ENTRY, LITERT_ENTRY)
SAVED_MODEL_FILE = "saved_model.pb"
VALUE_RANGE = (0.0, 1.0)  # images leave every signature and file in [0, 1]


@dataclass(frozen=True)
class Tensor:
    """A signature's input or output: TF Serving's dtype name, and its shape after the batch dimension.

    `shape` holds integers, or the names "latent_dim" and "image_shape" for the sizes an export fixes.
    """

    name: str
    dtype: str
    shape: tuple = ()

    def dims(self, latent_dim, image_shape):
        """The full shape, batch first (-1, as TF Serving's metadata writes an unknown size)."""
        sizes = {"latent_dim": (latent_dim,), "image_shape": tuple(image_shape)}
        return [-1, *(size for dim in self.shape for size in sizes.get(dim, (dim,)))]


LATENT = Tensor("latent", "DT_FLOAT", ("latent_dim",))  # standard normal latents
SEEDS = Tensor("seeds", "DT_INT64")  # each seed gives one latent: keras_dcgan/latents.py
DIGITS = Tensor("digits", "DT_INT64")  # the digit to draw, one per seed
IMAGES = Tensor("images", "DT_FLOAT", ("image_shape",))  # in VALUE_RANGE
PNG_BYTES = Tensor("png_bytes", "DT_STRING")  # 8-bit grey PNGs; TF Serving's REST API sends `_bytes` outputs as {"b64": ...}


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple  # of Tensor
    outputs: tuple  # of Tensor
    takes_digits: bool = False  # present only in an export whose generator takes digits

    @property
    def input_names(self):
        return tuple(tensor.name for tensor in self.inputs)

    @property
    def output(self):
        """The one output every signature has."""
        return self.outputs[0]


DEFAULT_SIGNATURE = "serving_default"
PNG_SIGNATURE = "generate_png"
SEEDS_SIGNATURE = "generate_from_seeds"
DIGITS_SIGNATURE = "generate_digits"
SIGNATURES = {
    DEFAULT_SIGNATURE: Signature(DEFAULT_SIGNATURE, (LATENT,), (IMAGES,)),
    PNG_SIGNATURE: Signature(PNG_SIGNATURE, (LATENT,), (PNG_BYTES,)),
    SEEDS_SIGNATURE: Signature(SEEDS_SIGNATURE, (SEEDS,), (IMAGES,)),
    DIGITS_SIGNATURE: Signature(DIGITS_SIGNATURE, (SEEDS, DIGITS), (IMAGES,), takes_digits=True),
}
# The ONNX and LiteRT files (and every edge variant beside them) hold the network alone: latents in, images out.
MODEL_INPUT = LATENT
MODEL_OUTPUT = IMAGES


def signatures_of(categories):
    """The signatures an export has: all, or all but the digit one for a generator that takes no digits."""
    return {name: signature for name, signature in SIGNATURES.items() if categories or not signature.takes_digits}


def digit_categories(categorical_code, code_labels):
    """How many digits a generator takes (0: none): only a categorical code that learnt the training labels draws asked digits."""
    return categorical_code if code_labels else 0


def manifest_digit_categories(manifest):
    """How many digits an export takes, from a checked manifest (0: none)."""
    return manifest["digits"]["categories"] if "digits" in manifest else 0


# -- the manifest's schema ----------------------------------------------------------------------------

SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_count(value, minimum=1):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_file_entry(entry):
    return isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and bool(SHA256.fullmatch(entry["sha256"])) and _is_count(entry.get("bytes"), 0)


def _is_model_file(value):
    return isinstance(value, dict) and all(isinstance(value.get(key, ""), str) for key in ("file", "input", "output"))


def _is_litert_file(value):
    return _is_model_file(value) and isinstance(value.get("signature", ""), str)


def _is_digits(value):
    return isinstance(value, dict) and _is_count(value.get("categories"), 2) and value.get("signature", DIGITS_SIGNATURE) == DIGITS_SIGNATURE


@dataclass(frozen=True)
class Field:
    required: bool
    check: object  # value -> bool
    expected: str  # what `check` accepts, for the error message


# Every field a reader uses. Other fields (parity, created_at, ...) are the export's record: readers
# show them but decide nothing on them.
MANIFEST_SCHEMA = {
    "format_version": Field(False, lambda value: value == MANIFEST_FORMAT_VERSION, f"{MANIFEST_FORMAT_VERSION}"),
    "latent_dim": Field(True, _is_count, "an integer >= 1"),
    "image_shape": Field(True, lambda value: isinstance(value, list) and len(value) == 3 and all(map(_is_count, value)), "[height, width, channels] of integers >= 1"),
    "value_range": Field(True, lambda value: isinstance(value, list) and len(value) == 2 and all(map(_is_number, value)) and tuple(value) == VALUE_RANGE, "[0.0, 1.0]"),
    ONNX_ENTRY: Field(True, _is_model_file, 'an object whose "file", "input" and "output" are strings'),
    LITERT_ENTRY: Field(False, _is_litert_file, 'an object whose "file", "signature", "input" and "output" are strings'),
    "files": Field(True, lambda value: isinstance(value, dict) and all(map(_is_file_entry, value.values())), 'an object of path -> {"sha256": 64 hex digits, "bytes": integer >= 0}'),
    "version": Field(False, _is_count, "an integer >= 1"),
    "model_name": Field(False, lambda value: isinstance(value, str) and bool(value), "a non-empty string"),
    "digits": Field(False, _is_digits, f'an object whose "categories" is an integer >= 2 (and "signature", if present, "{DIGITS_SIGNATURE}")'),
    "quality": Field(False, lambda value: value is None or isinstance(value, dict), "an object, or null"),
    "source": Field(False, lambda value: isinstance(value, dict) and isinstance(value.get("config", {}), dict), 'an object whose "config" is an object'),
}


class ManifestError(ValueError):
    """The manifest is unreadable, incomplete, or disagrees with the file it describes."""


def check_manifest(manifest, where):
    """Raise ManifestError, naming `where` (the manifest's path) and the field, unless `manifest` follows MANIFEST_SCHEMA."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"manifest {where} must hold a JSON object, got {type(manifest).__name__}")
    missing = [key for key, field in MANIFEST_SCHEMA.items() if field.required and key not in manifest]
    if missing:
        raise ManifestError(f"manifest {where} lacks the key(s) {', '.join(missing)}")
    for key, field in MANIFEST_SCHEMA.items():
        if key in manifest and not field.check(manifest[key]):
            shown = json.dumps(manifest[key], ensure_ascii=True)[:200]
            raise ManifestError(f"manifest {where}: {key} must be {field.expected}, got {shown}")
    return manifest
