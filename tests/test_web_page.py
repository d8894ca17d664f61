"""The browser page of `keras-dcgan serve` and the static bundle of `keras-dcgan web`, in a real headless Chromium.

The served page is compared with the server's own REST API (its pixels, read back from the
page's canvas, against the API's images for the same seeds, digits and latents); the bundle's
in-browser images with onnxruntime in Python. Browser tests need /usr/bin/chromium, Playwright
and onnxruntime-web (`.ci/install-browser`): they skip where Chromium is absent on a developer's
machine, and fail under CI (the CI variable set) so that a missing install cannot pass as green.
"""

import importlib.util
import io
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from browser_support import CHROMIUM, ORT_DIST, RecordedPage, chromium, static_file_server
from keras_dcgan import image_grid
from keras_dcgan.digits import latents_for_digits
from keras_dcgan.latent_walk import interpolate
from keras_dcgan.latents import MAX_SEED, latents_from_seeds
from keras_dcgan.serving.rest_client import RestClient
from keras_dcgan.serving.session import GeneratorSession
from test_serving_support import free_port, run_tf_free_cli, start_keras_dcgan_serve, tf_free_cli

QUALITY = {  # a quality block as `fit --eval-every` records it, for the page to show
    "epoch": 2, "fcd": 3.21, "classifier_score": 8.76, "class_kl": 0.01, "checkerboard": 1.0,
    "classifier": {"key": "0123456789abcdef", "test_accuracy": 0.99},
    "real_train_vs_test": {"fcd": 1.37, "classifier_score": 9.76},
}


def browser_or_skip():
    missing = [what for what, present in (
        (str(CHROMIUM), CHROMIUM.exists()),
        ("playwright", importlib.util.find_spec("playwright") is not None),
        (f"onnxruntime-web in {ORT_DIST}", (ORT_DIST / "ort.wasm.min.js").exists()),
    ) if not present]
    if missing:
        message = f"browser tests need {', '.join(missing)}: run .ci/install-browser"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    browser_or_skip()
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def version_dir(exported_model, tmp_path_factory):
    """A copy of the test export whose manifest records a quality block (the manifest is not among its checksummed files)."""
    folder = tmp_path_factory.mktemp("page_export") / "dcgan" / "1"
    shutil.copytree(exported_model.version_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "quality": QUALITY}))
    return folder


@pytest.fixture(scope="module")
def server(version_dir):
    process = start_keras_dcgan_serve(version_dir / "generator.onnx", "--workers", "1")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(server):
    return RestClient(server.url)


@pytest.fixture()
def served_page(browser, server):
    page = RecordedPage(browser, server.url + "/")
    yield page
    page.close()


def tiled(images):
    """What the page draws: keras_dcgan.image_grid's tile of the images as uint8."""
    return image_grid.tile(image_grid.to_uint8(images, (0.0, 1.0)))


def foreign_requests(page, origin):
    return [request.url for request in page.requests if not request.url.startswith((origin + "/", "blob:", "data:"))]


def http_get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# -- the served page, over HTTP ---------------------------------------------------------------------


def test_the_page_is_served_from_memory_with_content_types_and_caching_headers(server):
    status, headers, body = http_get(server.url + "/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8" and headers["cache-control"] == "no-cache"
    assert b'src="ui/page.js"' in body and b"http" not in body.replace(b"http-equiv", b"")  # nothing from another host
    for path, content_type in (("ui/page.js", "text/javascript; charset=utf-8"), ("ui/page.css", "text/css; charset=utf-8")):
        status, headers, body = http_get(f"{server.url}/{path}")
        assert (status, headers["content-type"], headers["cache-control"]) == (200, content_type, "public, max-age=300") and body
        assert http_get(f"{server.url}/{path}", {"If-None-Match": headers["etag"]})[0] == 304
    with urllib.request.urlopen(urllib.request.Request(server.url + "/", method="HEAD"), timeout=10) as response:
        assert response.status == 200 and int(response.headers["content-length"]) > 0 and response.read() == b""
    info = json.loads(http_get(server.url + "/ui/model.json")[2])
    assert (info["backend"], info["model_name"], info["version"], info["digit_categories"]) == ("rest", "dcgan", 1, 10)
    assert info["quality"] == QUALITY
    status, _, body = http_get(server.url + "/ui/missing.js")
    assert status == 404 and "the page's files are" in json.loads(body)["error"]


def test_no_ui_leaves_the_root_a_404_as_before(version_dir):
    process = start_keras_dcgan_serve(version_dir / "generator.onnx", "--workers", "1", "--no-ui")
    try:
        for path in ("/", "/ui/page.js"):
            status, _, body = http_get(process.url + path)
            assert status == 404 and json.loads(body)["error"].startswith("Not found")
        assert http_get(process.url + "/v1/models/dcgan")[0] == 200
    finally:
        process.stop()


# -- the served page, in the browser ----------------------------------------------------------------


def test_the_served_page_loads_with_no_console_error_and_asks_only_its_own_server(served_page, server):
    served_page.wait_drawn("#grid", "seeds 0-15")
    served_page.wait_drawn("#walk-frame", "seed 0 to seed 1 at 0/32")
    page = served_page.page
    assert page.inner_text("#model").startswith("dcgan version 1: latent 32, takes digits 0-9")
    assert "FCD\n3.21 (real data 1.37)" in page.inner_text("#quality").replace("\t", "\n")
    assert page.is_hidden("#message")
    assert served_page.errors == []
    urls = [request.url for request in served_page.requests]
    assert server.url + "/ui/model.json" in urls and server.url + "/v1/models/dcgan/versions/1/metadata" in urls
    assert foreign_requests(served_page, server.url) == []


def test_the_grid_shows_the_api_images_for_the_same_seeds_and_downloads_them(served_page, api):
    page = served_page.page
    page.fill("#seed", "5")
    page.select_option("#count", "9")
    served_page.wait_drawn("#grid", "seeds 5-13")
    expected = tiled(api.generate_from_seeds(range(5, 14)))
    np.testing.assert_array_equal(served_page.canvas_gray("#grid"), expected)
    with page.expect_download() as download:
        page.click("#download-grid")
    with open(download.value.path(), "rb") as png:
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.read())).convert("L")), expected)
    assert download.value.suggested_filename == "digits-seeds-5-13.png"


def test_picking_a_digit_draws_that_digit_for_each_seed(served_page, api):
    served_page.wait_drawn("#grid", "seeds 0-15")
    served_page.page.check("input[name=digit][value='7']")
    served_page.wait_drawn("#grid", "seeds 0-15, digit 7")
    expected = tiled(api.generate_digits(range(16), [7] * 16))
    np.testing.assert_array_equal(served_page.canvas_gray("#grid"), expected)
    assert not np.array_equal(expected, tiled(api.generate_from_seeds(range(16))))  # the digit changed what is drawn


def test_the_slider_walks_from_one_seed_and_digit_to_another(served_page, api):
    page = served_page.page
    page.fill("#walk-from", "3")
    page.fill("#walk-to", "8")
    page.select_option("#walk-to-digit", "2")
    page.click("#walk-form button[type=submit]")
    served_page.wait_drawn("#walk-frame", "seed 3 to seed 8 digit 2 at 0/32")
    start_frame = served_page.canvas_gray("#walk-frame")
    page.focus("#walk")
    for _ in range(12):
        page.keyboard.press("ArrowRight")  # one input event per step, as a user's drag makes
    served_page.wait_drawn("#walk-frame", "seed 3 to seed 8 digit 2 at 12/32")
    start, end = latents_from_seeds([3], 32)[0], latents_for_digits(latents_from_seeds([8], 32), [2], 10)[0]
    latent = interpolate(start, end, [12 / 32])
    # The latent the page sent for the frame it shows: its last serving_default request.
    sent = [json.loads(request.post_data) for request in served_page.requests if request.method == "POST"]
    walked = [body["inputs"] for body in sent if body["signature_name"] == "serving_default"]
    np.testing.assert_allclose(np.asarray(walked[-1], np.float32), latent, atol=1e-6)
    frame = served_page.canvas_gray("#walk-frame")
    np.testing.assert_array_equal(frame, tiled(api.generate(latent)))
    np.testing.assert_array_equal(start_frame, tiled(api.generate(start[np.newaxis])))
    assert not np.array_equal(frame, start_frame)


def test_the_javascript_latents_equal_python_for_the_same_seeds(served_page):
    seeds = [*range(256), 123456789, MAX_SEED - 1, MAX_SEED]
    latents = served_page.page.evaluate("([seeds, size]) => Array.from(kerasDcgan.latentsFromSeeds(seeds, size))", [seeds, 100])
    expected = latents_from_seeds(seeds, 100)
    np.testing.assert_array_equal(np.asarray(latents, np.float32).reshape(expected.shape), expected)  # float32, bit for bit
    digits = [seed % 10 for seed in seeds]
    moved = served_page.page.evaluate(
        "([seeds, digits]) => Array.from(kerasDcgan.latentsForDigits(kerasDcgan.latentsFromSeeds(seeds, 100), digits, 100, 10))",
        [seeds, digits],
    )
    np.testing.assert_array_equal(np.asarray(moved, np.float32).reshape(expected.shape), latents_for_digits(expected, digits, 10))
    refused = served_page.page.evaluate("() => { try { kerasDcgan.latentsFromSeeds([2 ** 31], 4); } catch (error) { return error.message; } }")
    assert refused == f"seeds must be integers in [0, {MAX_SEED}], got {2**31}"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("#seed", str(MAX_SEED + 1), f'first seed must be a whole number from 0 to {MAX_SEED}, got "{MAX_SEED + 1}"'),
        ("#seed", "seven", f'first seed must be a whole number from 0 to {MAX_SEED}, got "seven"'),
        ("#seed", str(MAX_SEED), f"first seed must be at most {MAX_SEED - 15} for 16 digits, got {MAX_SEED}"),
        ("#walk-to", "-4", f'the walk\'s last seed must be a whole number from 0 to {MAX_SEED}, got "-4"'),
    ],
    ids=["seed beyond the range", "not a number", "last seed beyond the range", "negative walk seed"],
)
def test_bad_input_gets_a_visible_message_and_the_page_keeps_working(served_page, api, field, value, message):
    page = served_page.page
    served_page.wait_drawn("#grid", "seeds 0-15")
    page.fill(field, value)
    page.press(field, "Enter")
    page.wait_for_selector("#message:not([hidden])")
    assert page.inner_text("#message") == message
    page.fill(field, "2")
    page.press(field, "Enter")
    page.wait_for_selector("#message", state="hidden")
    if field == "#seed":
        served_page.wait_drawn("#grid", "seeds 2-17")
        np.testing.assert_array_equal(served_page.canvas_gray("#grid"), tiled(api.generate_from_seeds(range(2, 18))))
    else:
        served_page.wait_drawn("#walk-frame", "seed 0 to seed 2 at 0/32")
    assert served_page.errors == []


# -- the static bundle ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(version_dir, tmp_path_factory):
    site = tmp_path_factory.mktemp("bundle") / "site"
    browser_or_skip()
    completed = run_tf_free_cli("web", version_dir, "--out", site, "--ort-dir", ORT_DIST)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"wrote {site} (") and "onnxruntime-web 1.30" in completed.stdout
    return site


def test_the_bundle_runs_the_generator_in_the_page_as_onnxruntime_does_in_python(browser, bundle, version_dir):
    with static_file_server(bundle, free_port()) as url:
        recorded = RecordedPage(browser, url)
        try:
            recorded.wait_drawn("#grid", "seeds 0-15")
            assert recorded.page.inner_text("#model").startswith("dcgan version 1: latent 32, takes digits 0-9; generated in this page")
            pixels = recorded.page.evaluate("async () => Array.from((await kerasDcgan.backend.fromSeeds([...Array(16).keys()])).pixels)")
            digit_pixels = recorded.page.evaluate("async () => Array.from((await kerasDcgan.backend.fromDigits([0, 1, 2, 3], [7, 7, 7, 7])).pixels)")
            shown = recorded.canvas_gray("#grid")
            errors, outside = recorded.errors, foreign_requests(recorded, url.rstrip("/"))
        finally:
            recorded.close()
    session = GeneratorSession(version_dir / "generator.onnx")
    expected = session.generate_from_seeds(range(16))
    np.testing.assert_allclose(np.asarray(pixels, np.float32).reshape(expected.shape), expected, atol=1e-4, rtol=0)
    sevens = session.generate_digits(range(4), [7] * 4)
    np.testing.assert_allclose(np.asarray(digit_pixels, np.float32).reshape(sevens.shape), sevens, atol=1e-4, rtol=0)
    # Pixels within 1e-4 of Python's may still round to the next of 255 levels.
    assert np.abs(shown.astype(int) - tiled(expected).astype(int)).max() <= 1
    assert errors == [] and outside == []


def test_the_web_command_refuses_what_it_cannot_use(version_dir, tmp_path):
    not_ort = tmp_path / "empty"
    not_ort.mkdir()
    completed = run_tf_free_cli("web", version_dir, "--out", tmp_path / "site", "--ort-dir", not_ort)
    assert completed.returncode == 2
    assert f"--ort-dir {not_ort} lacks ort.wasm.min.js, ort-wasm-simd-threaded.mjs, ort-wasm-simd-threaded.wasm" in completed.stderr
    assert "npm install onnxruntime-web@1.30" in completed.stderr
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    completed = run_tf_free_cli("web", version_dir, "--out", occupied, "--ort-dir", not_ort)
    assert completed.returncode == 2 and "exists and is not a bundle keras-dcgan web wrote" in completed.stderr
    assert (occupied / "notes.txt").read_text() == "mine"
    tampered = tmp_path / "tampered"
    shutil.copytree(version_dir, tampered)
    with open(tampered / "generator.onnx", "ab") as onnx:
        onnx.write(b"\0")
    completed = run_tf_free_cli("web", tampered, "--out", tmp_path / "site", "--ort-dir", not_ort)
    assert completed.returncode == 2 and "does not match" in completed.stderr and not (tmp_path / "site").exists()
    completed = run_tf_free_cli("web", tmp_path, "--out", tmp_path / "site")
    assert completed.returncode == 2 and "has no manifest.json: pass an export's version folder" in completed.stderr
    without_npm = subprocess.run(
        tf_free_cli("web", version_dir, "--out", tmp_path / "site"), capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": str(tmp_path / "no-programs-here")},
    )
    assert without_npm.returncode == 2
    assert without_npm.stderr.strip() == (
        "keras-dcgan web: error: needs onnxruntime-web 1.30: pass --ort-dir with its dist folder (`npm install "
        "onnxruntime-web@1.30` puts it in node_modules/onnxruntime-web/dist), or put npm on PATH so that this command fetches it"
    )


@pytest.mark.slow
def test_the_web_command_fetches_onnxruntime_web_with_npm_when_given_no_folder(version_dir, tmp_path):
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm is not on PATH")
        pytest.skip("npm is not on PATH")
    completed = run_tf_free_cli("web", version_dir, "--out", tmp_path / "site", timeout=900)
    assert completed.returncode == 0, completed.stderr
    assert "onnxruntime-web 1.30." in completed.stdout
    for name in ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "generator.onnx", "index.html", "ui/page.js"):
        assert (tmp_path / "site" / name).stat().st_size > 0
