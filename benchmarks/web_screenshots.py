"""Screenshots of the served page and of the static bundle, in the headless Chromium the browser tests drive.

    python benchmarks/web_screenshots.py exports/dcgan/1 --out docs/images

Serves the export with `keras-dcgan serve` and, as a bundle from `keras-dcgan web`, with
`python -m http.server`, both on 127.0.0.1; draws 36 digits (the served page with the digit 3),
moves the walk half way, and writes web-page.png and web-bundle.png. Needs .ci/install-browser.
"""

import argparse
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

from browser_support import ORT_DIST, RecordedPage, chromium, static_file_server  # noqa: E402
from serve_load import start_server, stop_server  # noqa: E402

VIEWPORT = {"width": 900, "height": 700}


def screenshot(browser, url, path, digit=None):
    recorded = RecordedPage(browser, url, viewport=VIEWPORT)
    try:
        page = recorded.page
        page.select_option("#count", "36")
        drawn = "seeds 0-35"
        if digit is not None:
            page.check(f"input[name=digit][value='{digit}']")
            drawn += f", digit {digit}"
        recorded.wait_drawn("#grid", drawn)
        page.fill("#walk", "16")
        page.dispatch_event("#walk", "input")
        recorded.wait_drawn("#walk-frame", "seed 0 to seed 1 at 16/32")
        page.screenshot(path=str(path), full_page=True)
        if recorded.errors:
            raise SystemExit(f"{url}: the page reported errors: {recorded.errors}")
    finally:
        recorded.close()
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=pathlib.Path, help="an export's version folder, e.g. exports/dcgan/1")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/images"))
    parser.add_argument("--port", type=int, default=8765, help="port of the static file server (default: %(default)s)")
    args = parser.parse_args(argv)
    onnx = args.export / "generator.onnx"
    process, url = start_server([sys.executable, "-m", "keras_dcgan.cli", "serve", "--onnx", str(onnx), "--port", "0", "--workers", "1"])
    with tempfile.TemporaryDirectory() as temporary, chromium() as browser:
        try:
            screenshot(browser, url + "/", args.out / "web-page.png", digit=3)
        finally:
            stop_server(process)
        site = pathlib.Path(temporary) / "site"
        from keras_dcgan.cli import main as keras_dcgan

        keras_dcgan(["web", str(args.export), "--out", str(site), "--ort-dir", str(ORT_DIST)])
        with static_file_server(site, args.port) as site_url:
            screenshot(browser, site_url, args.out / "web-bundle.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
