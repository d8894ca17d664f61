"""Latency of one exported version: onnxruntime vs LiteRT vs the SavedModel (in-process TensorFlow), interleaved.

    python benchmarks/export_latency.py exports/dcgan/1 [--rounds 7] [--calls 50] [--threads N]

All load the same version folder and run the same latents; the ONNX and LiteRT edge variants
(`--edge-variants`) are timed too when the folder has them. Each round times `--calls` calls of
each back end at each batch size, alternating, so a change of machine speed hits all of them;
printed: the median (and min-max) over rounds of the time per call and per image, each back
end's time relative to float32 onnxruntime, and the file's size. The SavedModel is called through
its `serving_default` signature, as TF Serving runs it, minus the server and network; the ONNX and
LiteRT files through serving/runtimes.py, as `keras-dcgan generate` runs them (LiteRT resizes its
input to each batch). `--threads` sets the intra-op threads of onnxruntime and LiteRT alike
(default: each runtime's own default).
"""

import argparse
import importlib.metadata
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
from keras_dcgan.serving.runtimes import runtime_for  # noqa: E402

BATCH_SIZES = (1, 64)


def per_call_seconds(function, calls):
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls


def describe(seconds):
    milliseconds = [value * 1e3 for value in seconds]
    return f"{statistics.median(milliseconds):.3f} ({min(milliseconds):.3f}-{max(milliseconds):.3f})"


def file_runner(path, threads):
    with open(path, "rb") as file:
        return runtime_for(path)(file.read(), threads).run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version_dir", help="an export's version folder (SavedModel + generator.onnx + manifest.json)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    with open(os.path.join(args.version_dir, MANIFEST_NAME)) as file:
        manifest = json.load(file)
    files = {"onnxruntime float32": manifest["onnx"]["file"]}
    files.update({f"onnxruntime {variant}": described["file"] for variant, described in manifest.get("onnx_variants", {}).items()})
    if "litert" in manifest:
        files["LiteRT float32"] = manifest["litert"]["file"]
    files.update({f"LiteRT {variant}": described["file"] for variant, described in manifest.get("litert_variants", {}).items()})
    runners = {name: file_runner(os.path.join(args.version_dir, file), args.threads) for name, file in files.items()}
    serving_default = tf.saved_model.load(args.version_dir).signatures[DEFAULT_SIGNATURE]
    runners["SavedModel"] = lambda latents: serving_default(latent=tf.constant(latents))["images"].numpy()

    print(f"{args.version_dir}: latent_dim {manifest['latent_dim']}, "
          f"generator_filters {manifest['source']['config']['generator_filters']}, "
          f"onnxruntime {onnxruntime.__version__}, ai-edge-litert {importlib.metadata.version('ai-edge-litert')}, "
          f"tensorflow {tf.__version__}, {os.cpu_count()} CPUs, threads {args.threads or 'default'}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"ms per call: median (min-max) over {args.rounds} interleaved rounds of {args.calls} calls")
    print(f"{'batch':>5}  {'back end':<26} {'ms per call':>24}  {'ms per image':>12}  {'vs onnxruntime float32':>22}  {'bytes':>10}")
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
            size = os.path.getsize(os.path.join(args.version_dir, files[name])) if name in files else None
            print(
                f"{batch:>5}  {name:<26} {describe(seconds):>24}  {statistics.median(seconds) * 1e3 / batch:>12.4f}  "
                f"{statistics.median(seconds) / baseline:>21.2f}x  {f'{size:,}' if size else '':>10}"
            )


if __name__ == "__main__":
    main()
