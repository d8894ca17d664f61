"""`keras-dcgan web EXPORT_VERSION_DIR --out site/`: a static folder that runs the generator in the browser.

The folder holds the page of `keras-dcgan serve` (the same files, web_page.py), the export's
ONNX file, checked against its manifest first as GeneratorSession does, and onnxruntime-web's
WebAssembly runtime. Any static file host serves it; the page then asks nothing of any other host.

onnxruntime-web comes from npm, not from this package (it is 14 MB, and a device that only serves
has no use for it): `--ort-dir` names an installed copy, or else the command runs
`npm pack onnxruntime-web@ORT_VERSION` itself. No TensorFlow; numpy and onnxruntime only.
"""

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

from keras_dcgan.serving.command import _version_from_folder
from keras_dcgan.contract import MANIFEST_NAME, ONNX_ENTRY, ONNX_FILE
from keras_dcgan.serving.manifest import read_manifest
from keras_dcgan.serving.session import GeneratorSession
from keras_dcgan.serving.web_page import ASSET_FILES, INDEX_FILE, MODEL_INFO_FILE, model_info, ui_file

ORT_VERSION = "1.30"  # the onnxruntime-web release the page is tested with (tests/test_web_page.py)
# The WebAssembly back end alone, single-threaded: the loader, its module and the binary it loads.
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
NPM_TIMEOUT_SECONDS = 600
MISSING_ORT = (
    f"needs onnxruntime-web {ORT_VERSION}: pass --ort-dir with its dist folder "
    f"(`npm install onnxruntime-web@{ORT_VERSION}` puts it in node_modules/onnxruntime-web/dist), "
    "or put npm on PATH so that this command fetches it"
)


def add_web_command(commands):
    web = commands.add_parser(
        "web",
        help="write a static web page that runs an exported generator in the browser (onnxruntime-web)",
        description="Write a folder that any static file host serves: the page of keras-dcgan serve (a grid of "
        "digits from seeds, a digit picker, a latent walk, PNG downloads) running the export's ONNX file in the "
        "browser with onnxruntime-web. docs/web.md shows how to host it.",
    )
    web.add_argument("export", metavar="EXPORT_VERSION_DIR", help="an export's version folder, e.g. exports/dcgan/1 (with its manifest.json)")
    web.add_argument("--out", default="site", help="folder to write; an earlier bundle there is replaced (default: %(default)s)")
    web.add_argument("--ort-dir", metavar="DIR", help=f"onnxruntime-web {ORT_VERSION}'s dist folder (default: fetched with npm pack)")
    web.add_argument("--model-name", default=None, help="name the page shows (default: the manifest's, else dcgan)")
    web.set_defaults(handler=run_web)


def run_web(args):
    version_dir = pathlib.Path(args.export)
    manifest_path = version_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ValueError(f"{version_dir} has no {MANIFEST_NAME}: pass an export's version folder, e.g. exports/dcgan/1")
    manifest = read_manifest(manifest_path)
    session = GeneratorSession(version_dir / manifest[ONNX_ENTRY].get("file", ONNX_FILE))
    out = pathlib.Path(args.out)
    _check_replaceable(out)
    model_name = args.model_name or manifest.get("model_name") or "dcgan"
    info = model_info(session, model_name, session.version or _version_from_folder(session.model_path), "onnx")
    with _onnxruntime_web(args.ort_dir) as (ort_dist, ort_version):
        written = write_bundle(out, session, info, ort_dist)
    sizes = {name: path.stat().st_size for name, path in written.items()}
    page_bytes = sum(size for name, size in sizes.items() if name == INDEX_FILE or name.startswith("ui/"))
    runtime_bytes = sum(sizes[name] for name in ORT_FILES)
    print(
        f"wrote {out} ({sum(sizes.values()) / 1e6:.1f} MB: page {page_bytes / 1e3:.1f} kB, {session.model_path.name} "
        f"{sizes[session.model_path.name] / 1e6:.2f} MB, onnxruntime-web {ort_version} {runtime_bytes / 1e6:.1f} MB); "
        f"host it with any static file server, e.g. python -m http.server --directory {out} 8000"
    )
    return 0


def write_bundle(out, session, info, ort_dist):
    """The bundle's files into a new folder beside `out`, which then takes `out`'s place; {relative name: path}."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        partial.chmod(0o755)  # mkdtemp's folder is private; a static host's user must read the bundle
        (partial / "ui").mkdir()
        (partial / INDEX_FILE).write_bytes(ui_file(INDEX_FILE))
        for name in ASSET_FILES:
            (partial / "ui" / name).write_bytes(ui_file(name))
        (partial / "ui" / MODEL_INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
        shutil.copyfile(session.model_path, partial / session.model_path.name)
        for name in ORT_FILES:
            shutil.copyfile(ort_dist / name, partial / name)
        written = sorted(path.relative_to(partial).as_posix() for path in partial.rglob("*") if path.is_file())
        _replace(out, partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {name: out / name for name in written}


def _is_bundle(folder):
    try:
        return json.loads((folder / "ui" / MODEL_INFO_FILE).read_text()).get("backend") == "onnx"
    except (OSError, ValueError, AttributeError):
        return False


def _check_replaceable(out):
    """ValueError unless `out` is absent, an empty folder, or a bundle this command wrote (checked before any work)."""
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or _is_bundle(out))):
        raise ValueError(f"--out {out} exists and is not a bundle keras-dcgan web wrote: pass a new or empty folder")


def _replace(out, partial):
    """`partial` renamed to `out`; an earlier `out` is moved aside first and removed after, so a reader never sees half a bundle."""
    if not out.exists():
        os.replace(partial, out)
        return
    previous = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.previous-", dir=out.parent))
    os.replace(out, previous / out.name)
    os.replace(partial, out)
    shutil.rmtree(previous, ignore_errors=True)


@contextlib.contextmanager
def _onnxruntime_web(ort_dir):
    """(dist folder holding ORT_FILES, version) from --ort-dir, or from `npm pack` into a temporary folder."""
    if ort_dir is not None:
        yield _installed_dist(pathlib.Path(ort_dir))
        return
    npm = shutil.which("npm")
    if npm is None:
        raise ValueError(MISSING_ORT)
    with tempfile.TemporaryDirectory(prefix="keras-dcgan-ort-") as temporary:
        folder = pathlib.Path(temporary)
        try:
            packed = subprocess.run(
                [npm, "pack", f"onnxruntime-web@{ORT_VERSION}", "--pack-destination", str(folder), "--silent"],
                capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=True,
            )
        except (OSError, subprocess.SubprocessError) as error:
            detail = (getattr(error, "stderr", "") or str(error)).strip().splitlines()[-1:]
            raise ValueError(f"npm pack onnxruntime-web@{ORT_VERSION} failed ({' '.join(detail)}); {MISSING_ORT}") from error
        (folder / "dist").mkdir()
        with tarfile.open(folder / packed.stdout.split()[-1]) as archive:
            for name in ("package.json", *(f"dist/{file}" for file in ORT_FILES)):
                (folder / name).write_bytes(archive.extractfile(f"package/{name}").read())
        yield _installed_dist(folder / "dist")


def _installed_dist(folder):
    """(dist folder, version) of an onnxruntime-web install: its dist folder, its package folder, or a folder with node_modules."""
    for candidate in (folder, folder / "dist", folder / "node_modules" / "onnxruntime-web" / "dist"):
        if all((candidate / name).is_file() for name in ORT_FILES):
            try:
                version = json.loads((candidate.parent / "package.json").read_text())["version"]
            except (OSError, ValueError, KeyError):
                version = "(unknown version)"
            return candidate, version
    raise ValueError(f"--ort-dir {folder} lacks {', '.join(ORT_FILES)}: {MISSING_ORT}")
