"""Latency of one exported version: onnxruntime vs the SavedModel (in-process TensorFlow), interleaved.

    python benchmarks/export_latency.py exports/dcgan/1 [--rounds 7] [--calls 50]

Both load the same version folder and run the same latents. Each round times `--calls` calls
of each back end at each batch size, alternating, so a change of machine speed hits both; the
median over rounds of the per-call time is printed, with the ratio. The SavedModel is called
through its `serving_default` signature, as TF Serving runs it, minus the server and network.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_dcgan.latents import latents_from_seeds  # noqa: E402

BATCH_SIZES = (1, 64)


def per_call_seconds(function, calls):
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls


def describe(seconds):
    milliseconds = [value * 1e3 for value in seconds]
    return f"{statistics.median(milliseconds):.3f} ({min(milliseconds):.3f}-{max(milliseconds):.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version_dir", help="an export's version folder (SavedModel + generator.onnx + manifest.json)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()

    with open(os.path.join(args.version_dir, "manifest.json")) as file:
        manifest = json.load(file)
    session = onnxruntime.InferenceSession(
        os.path.join(args.version_dir, manifest["onnx"]["file"]), providers=["CPUExecutionProvider"]
    )
    serving_default = tf.saved_model.load(args.version_dir).signatures["serving_default"]

    print(f"{args.version_dir}: latent_dim {manifest['latent_dim']}, "
          f"generator_filters {manifest['source']['config']['generator_filters']}, "
          f"onnxruntime {onnxruntime.__version__}, tensorflow {tf.__version__}, {os.cpu_count()} CPUs")
    print(f"median (min-max) ms per call over {args.rounds} interleaved rounds of {args.calls} calls")
    print(f"{'batch':>5}  {'onnxruntime':>22}  {'SavedModel':>22}  {'SavedModel / onnxruntime':>24}")
    for batch in BATCH_SIZES:
        latents = latents_from_seeds(np.arange(batch), manifest["latent_dim"])
        latents_tensor = tf.constant(latents)
        backends = {
            "onnxruntime": lambda: session.run([manifest["onnx"]["output"]], {manifest["onnx"]["input"]: latents}),
            "saved_model": lambda: serving_default(latent=latents_tensor)["images"].numpy(),
        }
        for run in backends.values():  # warm-up: first-call graph building and allocation
            per_call_seconds(run, 5)
        timings = {name: [] for name in backends}
        for _ in range(args.rounds):
            for name, run in backends.items():
                timings[name].append(per_call_seconds(run, args.calls))
        onnx_ms = statistics.median(timings["onnxruntime"]) * 1e3
        saved_model_ms = statistics.median(timings["saved_model"]) * 1e3
        print(f"{batch:>5}  {describe(timings['onnxruntime']):>22}  {describe(timings['saved_model']):>22}  "
              f"{saved_model_ms / onnx_ms:>23.2f}x")


if __name__ == "__main__":
    main()
