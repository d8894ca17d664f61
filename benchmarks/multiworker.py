"""Time per epoch: `keras-dcgan fit` in one process against `keras-dcgan fit --workers 2`.

    .venv/bin/python benchmarks/multiworker.py [--data-dir DIR] [--examples 10000] [--rounds 2]
        [--epochs 2] [--batch-size 128]

Both jobs train the same config (defaults but for the example count and epochs) on this
machine, one after the other, alternating for `--rounds` rounds so both see the same machine
state (only ratios measured side by side mean anything here). The time per epoch is that of
the last epoch (the first includes tracing), from the chief's `ms/step` times its steps;
the wall time of each job (start-up and all epochs) is printed beside it. The ratio is
taken per round (the two jobs ran back to back) and its median printed.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from keras_dcgan.config import RunOptions, TrainConfig
from keras_dcgan.launcher import fit_flags

# MNIST as IDX files: $KERAS_DCGAN_MNIST_DIR, else ../shared/data/mnist beside the checkout.
DEFAULT_DATA_DIR = os.environ.get(
    "KERAS_DCGAN_MNIST_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")
)
# Keras' one-line epoch summary, e.g. "78/78 - 16s - 205ms/step - d_loss: ..."
EPOCH_LINE = re.compile(r"^(?:\[worker 0\] )?(\d+)/\d+ - \S+ - ([\d.]+)(s|ms|us)/step", re.M)
UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def run_job(config, options, workers):
    """(seconds per epoch of the last epoch, wall seconds) of one `keras-dcgan fit` job."""
    command = [sys.executable, "-m", "keras_dcgan.cli", "fit", *fit_flags(config, options)]
    if workers:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    completed = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    steps, per_step, unit = EPOCH_LINE.findall(completed.stdout)[-1]
    return int(steps) * float(per_step) * UNIT_SECONDS[unit], wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    jobs = {"1 process": 0, "2 workers": 2}
    results = {name: [] for name in jobs}
    with tempfile.TemporaryDirectory(prefix="multiworker-benchmark-") as folder:
        for round_index in range(args.rounds):
            for name, workers in jobs.items():
                config = TrainConfig(max_examples=args.examples, batch_size=args.batch_size)
                options = RunOptions(
                    data_dir=args.data_dir, epochs=args.epochs, run_dir=os.path.join(folder, f"{name}-{round_index}")
                )
                epoch_seconds, wall = run_job(config, options, workers)
                results[name].append((epoch_seconds, wall))
                print(f"round {round_index + 1}: {name}: {epoch_seconds:.1f} s per epoch, {wall:.1f} s wall", flush=True)

    print(f"\n{args.examples} images, batch {args.batch_size}, {args.epochs} epochs, {os.cpu_count()} CPU cores")
    median = {name: statistics.median(epoch for epoch, _ in runs) for name, runs in results.items()}
    for name, runs in results.items():
        print(f"{name:>10}: {median[name]:.1f} s per epoch (median; rounds: "
              f"{', '.join(f'{epoch:.1f}' for epoch, _ in runs)}), "
              f"{args.examples // args.batch_size * args.batch_size / median[name]:.0f} images/s")
    ratios = [two[0] / one[0] for one, two in zip(results["1 process"], results["2 workers"])]
    print(f"2 workers / 1 process, time per epoch: {statistics.median(ratios):.2f}x "
          f"(median of the rounds' ratios: {', '.join(f'{ratio:.2f}' for ratio in ratios)})")


if __name__ == "__main__":
    main()
