"""Full int8 LiteRT (weights and activations, calibrated on seeded latents) against the dynamic-range variant the export writes.

    python benchmarks/litert_full_int8.py RUN_DIR VERSION_DIR [--epoch N] [--calibration 200] [--rounds 7] [--calls 50]

VERSION_DIR is an export of RUN_DIR with --edge-variants. Writes the full-int8 file into a
temporary folder, then prints each file's size, its max and mean difference to the float32
LiteRT file on seeds 0-63, and its latency at batch 1 and 64 (interleaved rounds, median), so
that the choice of variant in export/litert_export.py rests on a measurement.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_dcgan.export.generator_source import load_generator_source  # noqa: E402
from keras_dcgan.export.litert_export import save_frozen  # noqa: E402
from keras_dcgan.export.saved_model import DEFAULT_SIGNATURE  # noqa: E402
from keras_dcgan.latents import latents_from_seeds  # noqa: E402
from keras_dcgan.serving.runtimes import LiteRTModel  # noqa: E402


def full_int8(generator, latent_dim, calibration):
    """Integer-only arithmetic inside, float32 input and output (the same interface as every other file)."""
    latents = latents_from_seeds(np.arange(10_000, 10_000 + calibration), latent_dim)
    with tempfile.TemporaryDirectory() as folder:
        save_frozen(generator, latent_dim, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[DEFAULT_SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([latent[np.newaxis]] for latent in latents)
        return converter.convert()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("version_dir")
    parser.add_argument("--epoch", type=int, default=None)
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()

    source = load_generator_source(args.run_dir, args.epoch)
    contents = {
        name: open(os.path.join(args.version_dir, file), "rb").read()
        for name, file in (("float32", "generator.tflite"), ("dynamic_int8", "generator.dynamic_int8.tflite"))
    }
    contents["full_int8"] = full_int8(source.generator, source.latent_dim, args.calibration)
    models = {name: LiteRTModel(content, threads=1) for name, content in contents.items()}
    latents = latents_from_seeds(np.arange(64), source.latent_dim)
    reference = models["float32"].run(latents).astype(np.float64)
    print(f"{'file':<13} {'bytes':>10}  {'max abs diff':>12}  {'mean abs diff':>13}  ms per image at batch 1, 64 (1 thread)")
    timings = {name: {1: [], 64: []} for name in models}
    for batch in (1, 64):
        for model in models.values():
            model.run(latents[:batch])
        for _ in range(args.rounds):
            for name, model in models.items():
                started = time.perf_counter()
                for _ in range(args.calls):
                    model.run(latents[:batch])
                timings[name][batch].append((time.perf_counter() - started) / args.calls / batch * 1e3)
    for name, model in models.items():
        difference = np.abs(model.run(latents) - reference)
        print(
            f"{name:<13} {len(contents[name]):>10,}  {difference.max():>12.4f}  {difference.mean():>13.5f}  "
            f"{statistics.median(timings[name][1]):.4f}, {statistics.median(timings[name][64]):.4f}"
        )


if __name__ == "__main__":
    main()
