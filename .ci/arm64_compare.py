"""The comparisons of .ci/check-arm64: the same seeds drawn on x86_64 and on emulated aarch64.

    python arm64_compare.py reference ONNX REFERENCE.npz   # on the host: the images to match
    python arm64_compare.py device ONNX REFERENCE.npz OUT  # emulated: GeneratorSession + `generate --onnx`
    python arm64_compare.py ask URL REFERENCE.npz          # on the host: `keras-dcgan serve` under emulation

Each prints its largest difference and exits 1 when one is over TOLERANCE. Only numpy, Pillow and
the package's base install are imported, so the device side runs on the aarch64 install alone.
"""

import pathlib
import platform
import sys

import numpy as np

# Images are in [0, 1]; onnxruntime's aarch64 kernels round differently from its x86 ones, far below this.
TOLERANCE = 1e-4
SEEDS = list(range(16))
DIGITS = [seed % 10 for seed in SEEDS]  # every digit asked at least once
CLI_DIGIT = 7  # `keras-dcgan generate --digit 7 --n 16`, seeds 0-15


def reference(onnx_path, reference_path):
    """The host's images for SEEDS: plain, with DIGITS, and all sevens (what `generate --digit 7` draws)."""
    from keras_dcgan.serving.session import GeneratorSession

    session = GeneratorSession(onnx_path)
    np.savez(
        reference_path,
        seeds=session.generate_from_seeds(SEEDS),
        digits=session.generate_digits(SEEDS, DIGITS),
        sevens=session.generate_digits(SEEDS, [CLI_DIGIT] * len(SEEDS)),
    )
    print(f"reference images on {platform.machine()}: seeds {SEEDS[0]}-{SEEDS[-1]}, with and without digits")
    return 0


def device(onnx_path, reference_path, out_folder):
    """On the emulated interpreter: GeneratorSession's images and `keras-dcgan generate --onnx`'s PNGs against the host's."""
    from PIL import Image

    from keras_dcgan import image_grid
    from keras_dcgan.cli import main
    from keras_dcgan.serving.session import GeneratorSession

    if platform.machine() != "aarch64":
        return fail(f"expected to run on aarch64, this interpreter runs on {platform.machine()}")
    expected = np.load(reference_path)
    session = GeneratorSession(onnx_path)
    results = [
        within("GeneratorSession.generate_from_seeds", session.generate_from_seeds(SEEDS), expected["seeds"]),
        within("GeneratorSession.generate_digits", session.generate_digits(SEEDS, DIGITS), expected["digits"]),
    ]

    command = ["generate", "--onnx", str(onnx_path), "--n", str(len(SEEDS)), "--digit", str(CLI_DIGIT), "--out", str(out_folder)]
    if main(command) != 0:
        return fail(f"keras-dcgan {' '.join(command)} did not exit 0")
    drawn = np.stack([np.asarray(Image.open(pathlib.Path(out_folder) / f"seed_{seed}.png")) for seed in SEEDS])
    expected_pixels = image_grid.to_uint8(expected["sevens"], session.value_range).reshape(drawn.shape)
    # A value within TOLERANCE of a rounding boundary may land on the neighbouring 8-bit level.
    levels = int(np.abs(drawn.astype(int) - expected_pixels.astype(int)).max())
    print(f"keras-dcgan generate --onnx --digit {CLI_DIGIT} PNGs on aarch64: max difference to x86_64 {levels} of 255 (allowed 1)")
    results.append(levels <= 1)

    imported = sorted(name for name in sys.modules if name.partition(".")[0] in ("tensorflow", "keras"))
    if imported:
        return fail(f"the base install imported {imported[:5]}")
    return 0 if all(results) else fail(f"aarch64 images differ from x86_64 by more than {TOLERANCE:g}")


def ask(url, reference_path):
    """Status and predict requests to the emulated server; its images against the host's."""
    from keras_dcgan.serving.rest_client import RestClient

    client = RestClient(url, timeout=120)  # an emulated server answers slowly
    state = client.status()["model_version_status"][0]["state"]
    if state != "AVAILABLE":
        return fail(f"{url} reports the model {state}, expected AVAILABLE")
    print(f"GET {client.model_path}: {state}")
    expected = np.load(reference_path)
    results = [
        within("serve :predict generate_from_seeds", client.generate_from_seeds(SEEDS), expected["seeds"]),
        within("serve :predict generate_digits", client.generate_digits(SEEDS, DIGITS), expected["digits"]),
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
