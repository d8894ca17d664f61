"""The comparisons of .ci/check-arm64: the same seeds drawn on x86_64 and on emulated aarch64.

    python arm64_compare.py reference REFERENCE.npz MODEL...   # on the host: each file's images to match
    python arm64_compare.py device REFERENCE.npz OUT MODEL...  # emulated: GeneratorSession + `generate` per file
    python arm64_compare.py ask URL REFERENCE.npz MODEL        # on the host: `keras-dcgan serve` of MODEL under emulation

MODEL is an exported .onnx or .tflite file; each is compared with the host's images of the same
file, on the same runtime. Each command prints its largest differences and exits 1 when one is over
TOLERANCE. Only numpy, Pillow, the package's base install and (for a .tflite file) ai-edge-litert
are imported, so the device side runs on the aarch64 install alone.
"""

import pathlib
import platform
import sys

import numpy as np

# Images are in [0, 1]; onnxruntime's and LiteRT's aarch64 kernels round differently from their x86 ones, far below this.
TOLERANCE = 1e-4
SEEDS = list(range(16))
DIGITS = [seed % 10 for seed in SEEDS]  # every digit asked at least once
CLI_DIGIT = 7  # `keras-dcgan generate --digit 7 --n 16`, seeds 0-15
GENERATE_FLAGS = {".onnx": "--onnx", ".tflite": "--tflite"}  # how `keras-dcgan generate` takes each kind of file


def reference(reference_path, *model_paths):
    """The host's images for SEEDS from each file: plain, with DIGITS, and all sevens (what `generate --digit 7` draws)."""
    from keras_dcgan.serving.session import GeneratorSession

    if not model_paths:
        return fail("no model file given")
    images = {}
    for model_path in model_paths:
        session = GeneratorSession(model_path)
        name = pathlib.Path(model_path).name
        images[f"{name}/seeds"] = session.generate_from_seeds(SEEDS)
        images[f"{name}/digits"] = session.generate_digits(SEEDS, DIGITS)
        images[f"{name}/sevens"] = session.generate_digits(SEEDS, [CLI_DIGIT] * len(SEEDS))
    np.savez(reference_path, **images)
    names = ", ".join(pathlib.Path(path).name for path in model_paths)
    print(f"reference images on {platform.machine()}: seeds {SEEDS[0]}-{SEEDS[-1]}, with and without digits, from {names}")
    return 0


def device(reference_path, out_folder, *model_paths):
    """On the emulated interpreter: each file's GeneratorSession images and `keras-dcgan generate` PNGs against the host's."""
    if not model_paths:
        return fail("no model file given")
    if platform.machine() != "aarch64":
        return fail(f"expected to run on aarch64, this interpreter runs on {platform.machine()}")
    expected = np.load(reference_path)
    results = [device_file(pathlib.Path(path), expected, pathlib.Path(out_folder)) for path in model_paths]
    imported = sorted(name for name in sys.modules if name.partition(".")[0] in ("tensorflow", "keras"))
    if imported:
        return fail(f"the device install imported {imported[:5]}")
    return 0 if all(results) else fail(f"aarch64 images differ from x86_64 by more than {TOLERANCE:g}, or generate failed (above)")


def device_file(model_path, expected, out_folder):
    """One file's two GeneratorSession signatures and `keras-dcgan generate` PNGs; True when all match the host's."""
    from PIL import Image

    from keras_dcgan import image_grid
    from keras_dcgan.cli import main
    from keras_dcgan.serving.session import GeneratorSession

    name = model_path.name
    session = GeneratorSession(model_path)
    results = [
        within(f"{name}: GeneratorSession.generate_from_seeds", session.generate_from_seeds(SEEDS), expected[f"{name}/seeds"]),
        within(f"{name}: GeneratorSession.generate_digits", session.generate_digits(SEEDS, DIGITS), expected[f"{name}/digits"]),
    ]

    flag = GENERATE_FLAGS[model_path.suffix]
    pngs = out_folder / name
    command = ["generate", flag, str(model_path), "--n", str(len(SEEDS)), "--digit", str(CLI_DIGIT), "--out", str(pngs)]
    if main(command) != 0:
        fail(f"keras-dcgan {' '.join(command)} did not exit 0")
        return False
    drawn = np.stack([np.asarray(Image.open(pngs / f"seed_{seed}.png")) for seed in SEEDS])
    expected_pixels = image_grid.to_uint8(expected[f"{name}/sevens"], session.value_range).reshape(drawn.shape)
    # A value within TOLERANCE of a rounding boundary may land on the neighbouring 8-bit level.
    levels = int(np.abs(drawn.astype(int) - expected_pixels.astype(int)).max())
    print(f"{name}: keras-dcgan generate {flag} --digit {CLI_DIGIT} PNGs on aarch64: max difference to x86_64 {levels} of 255 (allowed 1)")
    return all(results) and levels <= 1


def ask(url, reference_path, model_path):
    """Status and predict requests to the emulated server of `model_path`; its images against the host's."""
    from keras_dcgan.serving.rest_client import RestClient

    client = RestClient(url, timeout=120)  # an emulated server answers slowly
    state = client.status()["model_version_status"][0]["state"]
    if state != "AVAILABLE":
        return fail(f"{url} reports the model {state}, expected AVAILABLE")
    print(f"GET {client.model_path}: {state}")
    expected = np.load(reference_path)
    name = pathlib.Path(model_path).name
    results = [
        within(f"{name}: serve :predict generate_from_seeds", client.generate_from_seeds(SEEDS), expected[f"{name}/seeds"]),
        within(f"{name}: serve :predict generate_digits", client.generate_digits(SEEDS, DIGITS), expected[f"{name}/digits"]),
    ]
    client.close()
    return 0 if all(results) else fail(f"the emulated server's images differ from x86_64 by more than {TOLERANCE:g}")


def within(what, images, expected):
    """Print the largest difference of `images` to the host's; True when it is within TOLERANCE."""
    if images.shape != expected.shape:
        print(f"{what}: shape {images.shape}, the host drew {expected.shape}")
        return False
    difference = float(np.abs(images - expected).max())
    print(f"{what} (seeds {SEEDS[0]}-{SEEDS[-1]}) on aarch64: max abs difference to x86_64 {difference:.2g} (tolerance {TOLERANCE:g})")
    return difference <= TOLERANCE


def fail(message):
    print(f"arm64 check failed: {message}", file=sys.stderr)
    return 1


COMMANDS = {"reference": reference, "device": device, "ask": ask}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
