"""Reading an export's manifest.json and checking a file against it, without TensorFlow.

The export step (`keras_dcgan.export`) writes `manifest.json` beside the SavedModel and
`generator.onnx`; it records the SHA-256 and size of every file. A device checks the ONNX
file against it before running it, so a corrupted or swapped file is refused at start-up
rather than producing wrong digits. The schema is the export contract's
(`keras_dcgan.contract.MANIFEST_SCHEMA`).
"""

import hashlib
import json
import pathlib

from keras_dcgan.contract import ManifestError, check_manifest


def read_manifest(path):
    """The manifest as a dict; ManifestError naming the file and the field if it does not follow the contract."""
    path = pathlib.Path(path)
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ManifestError(f"cannot read manifest {path}: {error}") from error
    except UnicodeDecodeError as error:
        raise ManifestError(f"cannot read manifest {path}: it is not UTF-8 text ({error.reason} at byte {error.start})") from error
    except RecursionError:  # the standard parser recurses once per nesting level
        raise ManifestError(f"cannot read manifest {path}: its JSON is nested too deeply to be a manifest") from None
    return check_manifest(manifest, path)


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
