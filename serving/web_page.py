"""The browser page of `keras-dcgan serve` at / (its files under /ui/), and what it knows of the model. Stdlib only.

The page's files (serving/ui/) ship as package data and are read once, at start-up, into
memory; `keras-dcgan web` copies the same files into a static bundle. The page learns which
back end to use and what the model is from ui/model.json (`model_info`): the server answers it
from memory, the bundle holds it as a file. Everything else the served page asks goes to the
server's own TF Serving REST API.
"""

import hashlib
import importlib.resources
import json
import pathlib

from keras_dcgan import contract
from keras_dcgan.serving.server import error_response

# The contract's names the page needs, sent in ui/model.json so that page.js spells none of them itself.
PAGE_CONTRACT = {
    "latents_signature": contract.DEFAULT_SIGNATURE,
    "seeds_signature": contract.SEEDS_SIGNATURE,
    "digits_signature": contract.DIGITS_SIGNATURE,
    "latent": contract.LATENT.name,
    "seeds": contract.SEEDS.name,
    "digits": contract.DIGITS.name,
}

UI_PREFIX = "/ui/"
INDEX_FILE = "index.html"
ASSET_FILES = ("page.js", "latents.js", "page.css")  # served as /ui/NAME, beside index.html in a bundle
MODEL_INFO_FILE = "model.json"
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
}
# index.html and model.json say which assets and model to use: revalidated on every load (a
# 304 when unchanged). The assets keep a short lifetime, so that an upgraded server's page is
# fetched within minutes even by a browser that never revalidates.
REVALIDATE = b"no-cache"
ASSET_CACHING = b"public, max-age=300"


def ui_file(name):
    """The bytes of one of the page's files, from the installed package."""
    return (importlib.resources.files("keras_dcgan.serving") / "ui" / name).read_bytes()


def model_info(session, model_name, version, backend):
    """ui/model.json: the back end the page uses and the model's name, version and recorded quality.

    `backend` is "rest" (the page asks the server that sent it) or "onnx" (the page runs
    `session`'s ONNX file itself, named in "onnx").
    """
    manifest = session.manifest or {}
    info = {
        "backend": backend,
        "model_name": model_name,
        "version": version,
        "latent_dim": session.latent_dim,
        "image_shape": list(session.image_shape),
        "digit_categories": session.digit_categories,
        "quality": manifest.get("quality"),
        "asked_digits": manifest.get("digits", {}).get("asked_digits"),
        "contract": PAGE_CONTRACT,
    }
    if backend == "onnx":
        info["onnx"] = {"file": session.model_path.name, "input": session.input_name, "output": session.output_name}
    return info


def _response(name, body, caching):
    """(headers of a 304, headers of a 200, body, ETag) of one file."""
    etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
    unchanged = [(b"cache-control", caching), (b"etag", etag)]
    content = [(b"content-type", CONTENT_TYPES[pathlib.PurePath(name).suffix]), (b"x-content-type-options", b"nosniff")]
    return unchanged, [*unchanged, *content, (b"content-length", str(len(body)).encode())], body, etag


class WebPage:
    """GET and HEAD of / and /ui/*, answered from memory; `answer` returns None for every other path."""

    def __init__(self, model_info_source):
        """`model_info_source()` gives ui/model.json's content (`model_info`) when asked: the model served may change version."""
        self.model_info_source = model_info_source
        self.files = {"/": _response(INDEX_FILE, ui_file(INDEX_FILE), REVALIDATE)}
        for name in ASSET_FILES:
            self.files[UI_PREFIX + name] = _response(name, ui_file(name), ASSET_CACHING)

    def answer(self, scope):
        """(status, headers, body) for a request of the page, or None when the path is not the page's."""
        path = scope["path"]
        if path != "/" and not path.startswith(UI_PREFIX):
            return None
        if scope["method"] not in ("GET", "HEAD"):
            status, headers, body = error_response(405, f"{scope['method']} {path}: the page answers GET and HEAD only")
            return status, [*headers, (b"allow", b"GET, HEAD")], body
        found = self.files.get(path)
        if path == UI_PREFIX + MODEL_INFO_FILE:
            try:
                found = _response(MODEL_INFO_FILE, json.dumps(self.model_info_source()).encode(), REVALIDATE)
            except LookupError:  # the repository's ServableNotFound: no version loaded yet, or none left
                return error_response(503, "no version of the model is available yet")
        if found is None:
            files = [*(name for name in self.files if name != "/"), UI_PREFIX + MODEL_INFO_FILE]
            return error_response(404, f"Not found: {path} (the page's files are {', '.join(files)})")
        unchanged, headers, body, etag = found
        if dict(scope["headers"]).get(b"if-none-match") == etag:
            return 304, unchanged, b""
        return 200, headers, body

