"""manifest.json: what a version folder holds, for the serving side to check before it loads anything.

Its schema is the export contract's (`keras_dcgan.contract.MANIFEST_SCHEMA`), checked here before
the file is written. `quality` holds the sample-quality scores `fit --eval-every` recorded for the
exported epoch (null when none were); `files` every file of the folder except manifest.json
itself; `digits` (export/digit_input.py) is there only for a generator that takes digits.
`litert` describes the LiteRT file (export/litert_export.py).
"""

import datetime
import hashlib
import json
import os

from keras_dcgan.contract import LITERT_ENTRY, MANIFEST_FORMAT_VERSION, MANIFEST_NAME, ONNX_ENTRY, VALUE_RANGE, check_manifest


def file_digests(folder):
    """{relative path with "/": {"sha256", "bytes"}} for every file under `folder` except the manifest."""
    digests = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if relative == MANIFEST_NAME:
                continue
            digests[relative] = {"sha256": sha256_of(path), "bytes": os.path.getsize(path)}
    return dict(sorted(digests.items()))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(
    *, model_name, version, latent_dim, image_shape, onnx, signatures, folder, source, parity, quality, variants=None, digits=None,
    litert=None, litert_variants=None,
):
    manifest = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "model_name": model_name,
        "version": version,
        "latent_dim": latent_dim,
        "image_shape": list(image_shape),
        "value_range": list(VALUE_RANGE),
        ONNX_ENTRY: onnx,
        "signatures": signatures,
        "files": file_digests(folder),
        "source": source,
        "parity": parity,
        "quality": quality,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if litert:
        manifest[LITERT_ENTRY] = litert
    if variants:
        manifest["onnx_variants"] = variants
    if litert_variants:
        manifest["litert_variants"] = litert_variants
    if digits:
        manifest["digits"] = digits
    return manifest


def write_manifest(folder, manifest):
    """Write `manifest` into `folder`, after checking it against the contract every reader checks it against."""
    path = os.path.join(folder, MANIFEST_NAME)
    check_manifest(manifest, path)
    with open(path, "w") as file:
        json.dump(manifest, file, indent=2)
        file.write("\n")
    return path
