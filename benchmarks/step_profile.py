"""Where the train step's time goes: a TensorFlow profiler trace of some steps, summed by op and layer.

    .venv/bin/python benchmarks/step_profile.py [--data-dir DIR] [--steps 60]
        [--variants float32,mixed_bfloat16] [--top 25]

For each variant (the syntax of `benchmarks/throughput.py`: PRECISION[/UPSAMPLING][@FIELD:VALUE&...]),
traces `--steps` steps of the compiled train function with the TensorFlow profiler and adds up
the time of every TensorFlow op on the host's threads. Printed: the step's wall time, the share
of the summed op time of each part of the model (BatchNorm, activations... from the layer in
each op's node name; the first part is the work that does the FLOPs, everything else is where
a step far below the FLOP bound loses its time) and of each op type. Op times on a 2-core
machine overlap (two threads), so shares, not sums, are read.
"""

import argparse
import collections
import glob
import os
import re
import tempfile
import time

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from throughput import DEFAULT_DATA_DIR, parse_variant  # a sibling script, importable as a script's own folder is on sys.path

from keras_dcgan.data import load_idx_folder

# Op types that run the network's multiply-adds, under any oneDNN name (_MklNativeConv2D,
# _MklNativeFusedConv2D, _MklNativeConv2DBackpropFilterWithBias, _MklMatMul...).
FLOP_OPS = re.compile(r"Conv2D|MatMul|Einsum")
# A TensorFlow op's trace event is "node/name:OpType", possibly followed by "#key=value,...#".
OP_EVENT = re.compile(r"^(?P<node>[^:#]+):(?P<type>[A-Za-z_][A-Za-z0-9_]*)(#.*)?$")


# What part of the model an op belongs to, from the layer or optimiser named in its node name.
LAYER_PARTS = (
    ("BatchNorm (moments, normalisation, their gradients)", re.compile(r"_bn(_\d+)?/")),
    ("optimisers and the weight average", re.compile(r"adam|optimizer|/ema", re.IGNORECASE)),
    ("upsampling (nearest resize)", re.compile(r"_resize(_\d+)?/")),
    ("activations", re.compile(r"relu|tanh", re.IGNORECASE)),
)


def part_of(node_name, op_type):
    if FLOP_OPS.search(op_type):
        return "convolutions, their gradients, MatMul"
    for part, pattern in LAYER_PARTS:
        if pattern.search(node_name):
            return part
    if op_type == "Cast":
        return "casts (mixed precision), outside the layers above"
    return "other (losses, noise, metrics, data)"


def op_times(trace_dir):
    """Sum the duration of every TF op event in the host plane of a profiler trace.

    Returns two Counters of seconds: by op type, and by part of the model (`part_of`).
    """
    paths = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise FileNotFoundError(f"no .xplane.pb under {trace_dir}: the profiler wrote no trace")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as file:
        space.ParseFromString(file.read())
    totals, parts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: metadata.name for key, metadata in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                match = OP_EVENT.match(names.get(event.metadata_id, ""))
                if match:
                    seconds = event.duration_ps / 1e12
                    totals[match.group("type")] += seconds
                    parts[part_of(match.group("node"), match.group("type"))] += seconds
    if not totals:
        raise ValueError(f"the trace in {trace_dir} holds no TensorFlow op events")
    return totals, parts


def profile(variant, steps):
    variant.run(5)  # trace and warm up
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir, options=tf.profiler.experimental.ProfilerOptions(host_tracer_level=2))
        started = time.perf_counter()
        variant.run(steps)
        seconds = time.perf_counter() - started
        tf.profiler.experimental.stop()
        return (seconds, *op_times(trace_dir))


def report(name, steps, seconds, totals, parts, top):
    summed = sum(totals.values())
    print(f"\n{name}: {steps} steps in {seconds:.2f} s ({1000 * seconds / steps:.1f} ms per step, traced); "
          f"op time summed over threads {1000 * summed / steps:.1f} ms per step")
    print(f"  {'part of the model':52} {'share':>7} {'ms/step':>8}")
    for part, value in parts.most_common():
        print(f"  {part:52} {value / summed:7.1%} {1000 * value / steps:8.2f}")
    print(f"  {'op type':40} {'share':>7} {'ms/step':>8}")
    for key, value in totals.most_common(top):
        marker = "*" if FLOP_OPS.search(key) else " "
        print(f"{marker} {key:40} {value / summed:7.1%} {1000 * value / steps:8.2f}")
    print("  (* = does the FLOPs)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--variants", default="float32,mixed_bfloat16")
    parser.add_argument("--top", type=int, default=25, help="op types listed per variant")
    args = parser.parse_args(argv)

    examples = load_idx_folder(args.data_dir, "train")
    for text in args.variants.split(","):
        variant = parse_variant(text, examples.images, batch_size=None, labels=examples.labels)
        seconds, totals, parts = profile(variant, args.steps)
        report(variant.name, args.steps, seconds, totals, parts, args.top)


if __name__ == "__main__":
    main()
