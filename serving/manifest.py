"""Reading an export's manifest.json and checking a file against it, without TensorFlow.

The export step (`keras_dcgan.export`) writes `manifest.json` beside the SavedModel and
`generator.onnx`; it records the SHA-256 and size of every file. A device checks the ONNX
file against it before running it, so a corrupted or swapped file is refused at start-up
rather than producing wrong digits.

The fields serving reads, checked by `read_manifest` (other fields are the export's record
and are not checked here):

    latent_dim     integer >= 1
    image_shape    [height, width, channels], integers >= 1
    value_range    [0.0, 1.0]: the export contract for images
    onnx           object; "file", "input", "output" strings where present
    litert         object (optional; the LiteRT file's): "file", "signature", "input", "output" strings where present
    files          object: relative path -> {"sha256": 64 hex digits, "bytes": integer >= 0}
    version        integer >= 1 (optional)
"""

import hashlib
import json
import pathlib
import re

MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = ("latent_dim", "image_shape", "value_range", "onnx", "files")
SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_count(value, minimum=1):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_file_entry(entry):
    return isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and SHA256.fullmatch(entry["sha256"]) and _is_count(entry.get("bytes"), 0)


def _has_names(*keys):
    """A check that a value is an object whose `keys`, where present, are strings."""
    return lambda value: isinstance(value, dict) and all(isinstance(value.get(key, ""), str) for key in keys)


# key -> (check, what was expected); the schema of the module docstring.
FIELD_CHECKS = {
    "latent_dim": (_is_count, "an integer >= 1"),
    "image_shape": (lambda value: isinstance(value, list) and len(value) == 3 and all(map(_is_count, value)), "[height, width, channels] of integers >= 1"),
    "value_range": (lambda value: value == [0, 1] and all(isinstance(bound, (int, float)) and not isinstance(bound, bool) for bound in value), "[0.0, 1.0]"),
    "onnx": (_has_names("file", "input", "output"), 'an object whose "file", "input" and "output" are strings'),
    "litert": (_has_names("file", "signature", "input", "output"), 'an object whose "file", "signature", "input" and "output" are strings'),
    "files": (lambda value: isinstance(value, dict) and all(map(_is_file_entry, value.values())), 'an object of path -> {"sha256": 64 hex digits, "bytes": integer >= 0}'),
    "version": (_is_count, "an integer >= 1"),
}


class ManifestError(ValueError):
    """The manifest is unreadable, incomplete, or disagrees with the file it describes."""


def read_manifest(path):
    """The manifest as a dict; ManifestError naming the file and the missing key if it is not one."""
    path = pathlib.Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ManifestError(f"cannot read manifest {path}: {error}") from error
    if not isinstance(manifest, dict):
        raise ManifestError(f"manifest {path} must hold a JSON object, got {type(manifest).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ManifestError(f"manifest {path} lacks the key(s) {', '.join(missing)}")
    for key, (check, expected) in FIELD_CHECKS.items():
        if key in manifest and not check(manifest[key]):
            raise ManifestError(f"manifest {path}: {key} must be {expected}, got {json.dumps(manifest[key])[:200]}")
    return manifest


def verify_content(manifest, manifest_path, file_path, content):
    """Raise ManifestError unless `content` (the bytes of `file_path`) has the size and SHA-256 the manifest records.

    Callers hash the very bytes they go on to use, so a file swapped after the check cannot slip through.
    """
    manifest_path = pathlib.Path(manifest_path)
    file_path = pathlib.Path(file_path)
    try:
        relative = file_path.resolve().relative_to(manifest_path.resolve().parent).as_posix()
    except ValueError:
        relative = file_path.name
    entry = manifest["files"].get(relative)
    if entry is None:
        raise ManifestError(f"manifest {manifest_path} has no entry for {relative} under 'files'")
    if len(content) != entry["bytes"]:
        raise ManifestError(
            f"{file_path} does not match {manifest_path}: {len(content)} bytes, the manifest records {entry['bytes']} "
            "(the file was changed or truncated after export)"
        )
    actual = hashlib.sha256(content).hexdigest()
    if actual != entry["sha256"]:
        raise ManifestError(
            f"{file_path} does not match {manifest_path}: SHA-256 {actual}, the manifest records "
            f"{entry['sha256']} (the file was changed after export; re-export or restore it)"
        )
