"""Training throughput: the project's train step against the TF tutorial's, in one process.

    .venv/bin/python benchmarks/throughput.py [--data-dir DIR] [--rounds 3] [--seconds 20]
        [--variants tutorial,float32,mixed_bfloat16] [--batch-size N]

Each round times every variant for a window of `--seconds`, one after the other, so all
variants see the same machine state (these machines change speed in steps of ~1.5x for
minutes at a time: only ratios measured side by side mean anything). Printed per variant:
images/s (median of rounds, and each round), the ratio to the tutorial, the FLOPs per
trained image and the fraction of this machine's float32 matmul peak, measured here too.

FLOPs per trained image = 2 x 3 x (MACs of G + 2 x MACs of D) for one forward pass each:
every weight layer runs forward, backward to its input and backward to its weights (the
usual 3x), G once and D on a real and a fake image. Only Dense and convolution layers count.

Variants: `tutorial` (benchmarks/tutorial_dcgan.py, float32, batch 256), and the project's
DCGAN as `keras-dcgan fit` trains it (its compiled train function) with the current
defaults and the named precision; suffix `+xla` compiles the step with XLA, e.g.
`float32+xla`; suffix `+keras-bn` trains with Keras' own BatchNormalization instead of the
fused kernel (keras_dcgan/fused_batch_norm.py), e.g. `float32+keras-bn`; `resize-conv`
variants use that upsampling (e.g. `float32/resize-conv`); after `@`, other TrainConfig
fields (booleans as true/false), e.g. the paper's networks and batch:
`mixed_bfloat16@generator_refine_convs:0&generator_output_conv:false&discriminator_refine_convs:0&categorical_code:0&batch_size:128&generator_ema:0`.
"""

import argparse
import dataclasses
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import tutorial_dcgan  # a sibling script: Python puts a script's own folder first on sys.path

from keras_dcgan.config import TrainConfig
from keras_dcgan.data import load_idx_folder, training_dataset
from keras_dcgan.precision import resolve_precision
from keras_dcgan.training import build_model

# MNIST as IDX files: $KERAS_DCGAN_MNIST_DIR, else ../shared/data/mnist beside the checkout.
DEFAULT_DATA_DIR = os.environ.get(
    "KERAS_DCGAN_MNIST_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")
)


def forward_macs(model):
    """Multiply-accumulates of one forward pass for one image (Dense and convolution layers)."""
    total = 0
    for layer in model.layers:
        kernel_elements = None
        if isinstance(layer, (keras.layers.Conv2DTranspose,)):
            input_shape = layer.input.shape  # a transposed conv scatters every input pixel
            kernel_elements = int(np.prod(layer.kernel.shape))
            total += int(np.prod(input_shape[1:3])) * kernel_elements
        elif isinstance(layer, keras.layers.Conv2D):
            kernel_elements = int(np.prod(layer.kernel.shape))
            total += int(np.prod(layer.output.shape[1:3])) * kernel_elements
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def train_flops_per_image(generator, discriminator):
    return 2 * 3 * (forward_macs(generator) + 2 * forward_macs(discriminator))


def matmul_peak(dtype=tf.float32, size=2048, seconds=3.0):
    """Measured matmul FLOP/s at `size`^2, the machine's practical peak."""
    matrix = tf.cast(tf.random.normal((size, size)), dtype)
    multiply = tf.function(lambda value: tf.matmul(value, value))
    multiply(matrix).numpy()
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        multiply(matrix).numpy()
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started)


class TutorialVariant:
    name = "tutorial"

    def __init__(self, images):
        self.model = tutorial_dcgan.TutorialDCGAN()
        self.batch_size = tutorial_dcgan.BATCH_SIZE
        self.iterator = iter(tutorial_dcgan.make_dataset(images).repeat())
        self.flops = train_flops_per_image(self.model.generator, self.model.discriminator)

    def run(self, steps):
        for _ in range(steps):
            losses = self.model.train_step(next(self.iterator))
        float(losses[0])  # wait for the last step


# The run length a throughput window trains in: longer than any window, so decaying learning
# rates stay at their start values (speed does not depend on them).
WINDOW_RUN_STEPS = 10**9


class ProjectVariant:
    """The project's DCGAN with TrainConfig defaults plus `overrides`, stepped by its compiled train function."""

    def __init__(self, images, overrides, jit_compile=False, fused_batch_norm=True, labels=None,
                 total_steps=WINDOW_RUN_STEPS):
        config = TrainConfig(**{**TrainConfig().to_dict(), **overrides})
        self.config = dataclasses.replace(config, precision=resolve_precision(config.precision)[0])
        self.name = (f"{self.config.precision}/{self.config.upsampling}{'+xla' if jit_compile else ''}"
                     f"{'' if fused_batch_norm else '+keras-bn'} b{self.config.batch_size}")
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.config.precision)
        try:
            self.model = build_model(self.config, total_steps=total_steps, fused_batch_norm=fused_batch_norm)
        finally:
            keras.config.set_dtype_policy(previous)
        self.model.jit_compile = jit_compile
        self.batch_size = self.config.batch_size
        self.model.make_train_function()
        self.train_function = self.model.train_function
        labels = labels if self.config.digit_categories else None
        self.iterator = iter(training_dataset(images, self.batch_size, self.config.seed, labels=labels))
        self.flops = train_flops_per_image(self.model.generator, self.model.discriminator)

    def run(self, steps):
        for _ in range(steps):
            logs = self.train_function(self.iterator)
        np.asarray(logs["d_loss"])


def parse_overrides(text, separator=","):
    """"field:value<separator>field:value..." -> TrainConfig overrides, typed like the defaults."""
    overrides = {}
    for item in filter(None, text.split(separator)):
        name, _, value = item.partition(":")
        default = getattr(TrainConfig(), name)
        if isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{name} is a boolean: write {name}:true or {name}:false, got {value!r}")
            overrides[name] = value.lower() == "true"
        else:
            overrides[name] = type(default)(value) if default is not None else value
    return overrides


def parse_variant(text, images, batch_size, labels=None):
    """"tutorial", or PRECISION[/UPSAMPLING][+xla][+keras-bn][@FIELD:VALUE&FIELD:VALUE...] for the project's model."""
    if text == "tutorial":
        return TutorialVariant(images)
    text, _, extra = text.partition("@")
    precision, _, upsampling = text.replace("+xla", "").replace("+keras-bn", "").partition("/")
    overrides = {"precision": precision}
    if upsampling:
        overrides["upsampling"] = upsampling
    if batch_size:
        overrides["batch_size"] = batch_size
    overrides.update(parse_overrides(extra, separator="&"))
    variant = ProjectVariant(
        images, overrides, jit_compile="+xla" in text, fused_batch_norm="+keras-bn" not in text, labels=labels
    )
    if extra:
        variant.name += f" @{extra}"
    return variant


def time_window(variant, seconds, chunk_steps=10):
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        variant.run(chunk_steps)
        steps += chunk_steps
    return steps * variant.batch_size / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--variants", default="tutorial,float32,mixed_bfloat16")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size of the project variants (default: TrainConfig's)")
    args = parser.parse_args(argv)

    examples = load_idx_folder(args.data_dir, "train")
    variants = [parse_variant(text, examples.images, args.batch_size, examples.labels) for text in args.variants.split(",")]
    for variant in variants:
        variant.run(5)  # trace and warm up
    rates = {variant.name: [] for variant in variants}
    peaks = []
    for round_index in range(args.rounds):
        peaks.append(matmul_peak(seconds=2.0))  # the bound moves with the machine: measure it every round
        for variant in variants:
            rates[variant.name].append(time_window(variant, args.seconds))
        print(f"round {round_index + 1}: float32 matmul {peaks[-1] / 1e9:.0f} GFLOP/s, "
              + ", ".join(f"{name} {values[-1]:.0f} img/s" for name, values in rates.items()), flush=True)
    peak = statistics.median(peaks)

    print(f"\nfloat32 matmul peak (2048^2), median of rounds: {peak / 1e9:.0f} GFLOP/s ({' '.join(f'{p / 1e9:.0f}' for p in peaks)})")
    reference = statistics.median(rates["tutorial"]) if "tutorial" in rates else None
    print(f"{'variant':34} {'img/s (median)':>14} {'rounds':>22} {'x tutorial':>10} {'MFLOP/img':>10} {'% f32 peak':>10}")
    for variant in variants:
        values = rates[variant.name]
        median = statistics.median(values)
        ratio = f"{median / reference:.2f}" if reference else "-"
        fraction = statistics.median(rate * variant.flops / round_peak for rate, round_peak in zip(values, peaks))
        print(
            f"{variant.name:34} {median:14.0f} {' '.join(f'{value:.0f}' for value in values):>22} {ratio:>10} "
            f"{variant.flops / 1e6:10.1f} {fraction:10.1%}"
        )


if __name__ == "__main__":
    main()
