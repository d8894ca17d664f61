"""Latency of one exported version: onnxruntime vs the SavedModel (in-process TensorFlow), interleaved.

    python benchmarks/export_latency.py exports/dcgan/1 [--rounds 7] [--calls 50]

Both load the same version folder and run the same latents; the ONNX edge variants
(`--edge-variants`) are timed too when the folder has them. Each round times `--calls` calls of
each back end at each batch size, alternating, so a change of machine speed hits all of them;
printed: the median (and min-max) over rounds of the time per call, and each back end's time
relative to float32 onnxruntime. The SavedModel is called through its `serving_default`
signature, as TF Serving runs it, minus the server and network.
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

from keras_dcgan.contract import DEFAULT_SIGNATURE, MANIFEST_NAME  # noqa: E402
from keras_dcgan.latents import latents_from_seeds  # noqa: E402
from keras_dcgan.serving.onnx_session import open_session  # noqa: E402

BATCH_SIZES = (1, 64)


def per_call_seconds(function, calls):
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls


def describe(seconds):
    milliseconds = [value * 1e3 for value in seconds]
    return f"{statistics.median(milliseconds):.3f} ({min(milliseconds):.3f}-{max(milliseconds):.3f})"


def onnx_runner(path, manifest):
    session = open_session(path)
    input_name, output_name = manifest["onnx"]["input"], manifest["onnx"]["output"]
    return lambda latents: session.run([output_name], {input_name: latents})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version_dir", help="an export's version folder (SavedModel + generator.onnx + manifest.json)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()

    with open(os.path.join(args.version_dir, MANIFEST_NAME)) as file:
        manifest = json.load(file)
    runners = {"onnxruntime float32": onnx_runner(os.path.join(args.version_dir, manifest["onnx"]["file"]), manifest)}
    for variant, described in manifest.get("onnx_variants", {}).items():
        runners[f"onnxruntime {variant}"] = onnx_runner(os.path.join(args.version_dir, described["file"]), manifest)
    serving_default = tf.saved_model.load(args.version_dir).signatures[DEFAULT_SIGNATURE]
    runners["SavedModel"] = lambda latents: serving_default(latent=tf.constant(latents))["images"].numpy()

    print(f"{args.version_dir}: latent_dim {manifest['latent_dim']}, "
          f"generator_filters {manifest['source']['config']['generator_filters']}, "
          f"onnxruntime {onnxruntime.__version__}, tensorflow {tf.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"ms per call: median (min-max) over {args.rounds} interleaved rounds of {args.calls} calls")
    print(f"{'batch':>5}  {'back end':<22} {'ms per call':>24}  {'vs onnxruntime float32':>22}")
    for batch in BATCH_SIZES:
        latents = latents_from_seeds(np.arange(batch), manifest["latent_dim"])
        for run in runners.values():  # warm-up: first-call graph building and allocation
            per_call_seconds(lambda: run(latents), 5)
        timings = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                timings[name].append(per_call_seconds(lambda: run(latents), args.calls))
        baseline = statistics.median(timings["onnxruntime float32"])
        for name, seconds in timings.items():
            print(f"{batch:>5}  {name:<22} {describe(seconds):>24}  {statistics.median(seconds) / baseline:>21.2f}x")


if __name__ == "__main__":
    main()
