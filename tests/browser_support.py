"""Driving Debian's headless Chromium with Playwright: shared by tests/test_web_page.py and benchmarks/web_screenshots.py.

Playwright's own browser download cannot be fetched here, so it drives /usr/bin/chromium
(`.ci/install-browser` installs it, and onnxruntime-web into .cache/onnxruntime-web).
"""

import contextlib
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = pathlib.Path("/usr/bin/chromium")
# Headless as root, and quiet on a closed network: without the background-networking flags
# Chromium keeps trying to reach update and sync services. Playwright adds --headless and a
# fresh profile folder of its own.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ORT_DIST = REPO_ROOT / ".cache" / "onnxruntime-web" / "node_modules" / "onnxruntime-web" / "dist"
START_TIMEOUT_SECONDS = 30


@contextlib.contextmanager
def chromium():
    """A headless Chromium browser (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class RecordedPage:
    """A browser tab on `url` that records every request it makes and every console error or uncaught exception."""

    def __init__(self, browser, url, viewport=None):
        self.context = browser.new_context(accept_downloads=True, viewport=viewport or {"width": 1100, "height": 900})
        self.page = self.context.new_page()
        self.requests = []  # Playwright Request objects, in order
        self.errors = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(url)
        # Attribute selectors, not wait_for_function: the page's Content-Security-Policy forbids the
        # string evaluation Playwright's polling predicates use.
        self.page.wait_for_selector("body[data-ready=true], #message:not([hidden])", timeout=START_TIMEOUT_SECONDS * 1000)

    def wait_drawn(self, canvas, drawn):
        """Wait until the canvas `canvas` (a CSS selector) shows `drawn` (its data-drawn attribute)."""
        self.page.wait_for_selector(f'{canvas}[data-drawn="{drawn}"]', timeout=START_TIMEOUT_SECONDS * 1000)

    def canvas_gray(self, canvas):
        """The canvas's pixels as uint8 [height, width] (red channel; the page draws gray), read back from the page."""
        width, height, data = self.page.eval_on_selector(
            canvas, "c => [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]"
        )
        rgba = np.asarray(data, np.uint8).reshape(height, width, 4)
        assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 0] == rgba[..., 2]).all() and (rgba[..., 3] == 255).all()
        return rgba[..., 0]

    def close(self):
        self.context.close()


@contextlib.contextmanager
def static_file_server(folder, port):
    """`python -m http.server` serving `folder` on 127.0.0.1:`port`, as a user would host the bundle; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"python -m http.server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
