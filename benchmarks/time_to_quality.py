"""Time to quality: training seconds until each model first reaches a given FCD.

    .venv/bin/python benchmarks/time_to_quality.py [--data-dir DIR] [--epochs 10] [--samples 10000]
        [--variants "paper=precision:float32;fast=precision:mixed_bfloat16,generator_ema:0.999"] [--seeds 0,1]

The TF tutorial re-implementation and each project variant (TrainConfig defaults plus the
listed overrides, trained by the compiled train function `keras-dcgan fit` uses) take turns,
one epoch each, in this one process, so all of them see the same machine state. After every
epoch each is scored with `keras-dcgan evaluate`'s metrics (FCD etc. on --samples seeded
latents against the test split; the clock is stopped while scoring). Variants with a weight
average are scored on the average (`ema`) and on the last weights (`raw`). The item
`batch_norm:keras` trains a variant with Keras' own BatchNormalization instead of the fused
kernel (keras_dcgan/fused_batch_norm.py). Variants whose code learns the labels (`code_labels`)
are also asked for each digit in turn (--samples seeds) and print the share drawn as asked.

`--seeds 0,1,2` trains every variant once per seed, all interleaved.

Printed: a table per epoch; per model its best FCD and epoch, the mean FCD and score of its last
three epochs, and the first epoch (and training seconds) at which it reached the quality target
(classifier score >= --target-score and FCD <= --target-fcd); then, with T = the tutorial's best
FCD over its epochs, the training seconds each model needed to first reach T and T/4 (and T/10).
"""

import argparse
import json
import os
import time

import numpy as np

# Sibling scripts: Python puts a script's own folder first on sys.path.
import throughput
import tutorial_dcgan

from keras_dcgan import image_grid
from keras_dcgan.config import TrainConfig
from keras_dcgan.data import steps_per_epoch
from keras_dcgan.evaluation.asked_digits import measure_asked_digits
from keras_dcgan.evaluation.report import make_evaluator
from keras_dcgan.image_range import to_unit_range
from keras_dcgan.inference_generator import inference_generator
from keras_dcgan.latents import latents_from_seeds


class Tutorial:
    name = "tutorial"

    def __init__(self, images):
        self.model = tutorial_dcgan.TutorialDCGAN()
        self.dataset = tutorial_dcgan.make_dataset(images)

    def train_epoch(self):
        self.model.train_epoch(self.dataset)

    def samplers(self):
        return {"": self.model.generate}


KERAS_BATCH_NORM = "batch_norm:keras"


class Project:
    def __init__(self, name, images, overrides, epochs, fused_batch_norm=True, labels=None):
        self.name = name
        self.steps = steps_per_epoch(len(images), overrides.get("batch_size", TrainConfig().batch_size))
        self.variant = throughput.ProjectVariant(
            images, overrides, fused_batch_norm=fused_batch_norm, labels=labels, total_steps=self.steps * epochs
        )

    def train_epoch(self):
        self.variant.run(self.steps)

    def samplers(self):
        model, config = self.variant.model, self.variant.config
        averaged = inference_generator(config, model.generator, model.generator_optimizer)

        def sample(generator):
            return lambda latents: to_unit_range(np.asarray(generator(latents, training=False)))

        if not config.generator_ema:
            return {"": sample(averaged)}
        return {"ema": sample(averaged), "raw": sample(inference_generator(config, model.generator))}

    def takes_digits(self):
        return self.variant.config.digit_categories > 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=throughput.DEFAULT_DATA_DIR)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--variants", default="defaults=", help="NAME=FIELD:VALUE,...;NAME=... (TrainConfig overrides)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds: every variant trains once per seed (NAME-sSEED)")
    parser.add_argument("--target-score", type=float, default=9.5, help="quality target: classifier score at least this ...")
    parser.add_argument("--target-fcd", type=float, default=3.0, help="... and FCD at most this")
    parser.add_argument("--no-tutorial", action="store_true")
    parser.add_argument("--average-only", action="store_true", help="score only the weight average, not also the last weights")
    parser.add_argument("--json", default=None, help="write every measurement here")
    parser.add_argument("--grids", default=None, help="folder for an 8x8 sample grid (seeds 0-63) per model and epoch")
    args = parser.parse_args(argv)

    evaluator = make_evaluator(data_dir=args.data_dir)
    images = evaluator.train.images
    models = [] if args.no_tutorial else [Tutorial(images)]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    for seed in seeds:
        for item in filter(None, args.variants.split(";")):
            name, _, overrides = item.partition("=")
            fields = overrides.split(",")
            fused_batch_norm = KERAS_BATCH_NORM not in fields
            fields = ",".join(field for field in fields if field != KERAS_BATCH_NORM)
            overrides = {**throughput.parse_overrides(fields), "seed": seed}
            name = f"{name}-s{seed}" if len(seeds) > 1 else name
            models.append(Project(name, images, overrides, args.epochs, fused_batch_norm, evaluator.train.labels))
    real = evaluator.real_reference(args.samples)
    print(f"real (train vs test, {args.samples}): FCD {real.fcd:.3f}, score {real.classifier_score:.3f}, "
          f"class KL {real.class_kl:.4f}, unsure {real.unsure_share:.1%}, checkerboard {real.checkerboard:.3f}", flush=True)

    records = []
    clocks = {model.name: 0.0 for model in models}
    for epoch in range(1, args.epochs + 1):
        for model in models:
            started = time.perf_counter()
            model.train_epoch()
            clocks[model.name] += time.perf_counter() - started
            samplers = model.samplers()
            if args.average_only:
                samplers.pop("raw", None)
            for label, sample in samplers.items():
                name = f"{model.name}/{label}" if label else model.name
                latents = latents_from_seeds(range(args.samples), _latent_dim(model))
                scores = evaluator.evaluate(_in_batches(sample, latents))
                record = {"model": name, "epoch": epoch, "train_seconds": clocks[model.name], **scores.to_dict()}
                asked = ""
                if isinstance(model, Project) and model.takes_digits():
                    digits = measure_asked_digits(
                        lambda latents: _in_batches(sample, latents), evaluator.classifier, _latent_dim(model),
                        model.variant.config.categorical_code, args.samples,
                    )
                    record["asked_digits"] = digits.to_dict()
                    asked = f"  asked {digits.accuracy:.2%} (worst {min(digits.per_digit):.1%})"
                records.append(record)
                if args.grids:
                    write_grid(os.path.join(args.grids, f"{name.replace('/', '-')}-epoch{epoch:02d}.png"), sample, _latent_dim(model))
                print(
                    f"epoch {epoch:2d} {name:22} {clocks[model.name]:7.0f} s  FCD {scores.fcd:8.3f}  "
                    f"score {scores.classifier_score:.3f}  KL {scores.class_kl:.4f}  "
                    f"classes {min(scores.class_shares):.1%}-{max(scores.class_shares):.1%}  "
                    f"unsure {scores.unsure_share:.1%}  checkerboard {scores.checkerboard:.2f}{asked}",
                    flush=True,
                )
        if args.json:
            with open(args.json, "w") as file:
                json.dump({"real": real.to_dict(), "records": records}, file, indent=1)
    summarize(records, args.target_score, args.target_fcd)


def _in_batches(sample, latents, batch_size=500):
    return np.concatenate([sample(latents[start : start + batch_size]) for start in range(0, len(latents), batch_size)])


def write_grid(path, sample, latent_dim):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    images = image_grid.to_uint8(sample(latents_from_seeds(range(64), latent_dim)), value_range=(0.0, 1.0))
    image_grid.write_png(path, image_grid.tile(images, columns=8))


def _latent_dim(model):
    return model.model.latent_dim if isinstance(model, Tutorial) else model.variant.config.latent_dim


def summarize(records, target_score, target_fcd):
    names = list(dict.fromkeys(record["model"] for record in records))
    tutorial = [record["fcd"] for record in records if record["model"] == "tutorial"]
    print(f"\nmodel                   best FCD (epoch)   last-3 mean FCD  last-3 mean score  min class share (last)  "
          f"first score >= {target_score} and FCD <= {target_fcd}")
    for name in names:
        mine = [record for record in records if record["model"] == name]
        best = min(mine, key=lambda record: record["fcd"])
        last = mine[-3:]
        first = next((r for r in mine if r["classifier_score"] >= target_score and r["fcd"] <= target_fcd), None)
        print(
            f"{name:22} {best['fcd']:9.3f} ({best['epoch']:2d})   {np.mean([r['fcd'] for r in last]):14.3f}  "
            f"{np.mean([r['classifier_score'] for r in last]):17.3f}  {min(mine[-1]['class_shares']):21.1%}  "
            + (f"epoch {first['epoch']}, {first['train_seconds']:.0f} training s" if first else "not reached")
        )
    if not tutorial:
        return
    target = min(tutorial)
    print(f"\nT = tutorial's best FCD over its {len(tutorial)} epochs = {target:.3f}")
    for name in names:
        mine = [record for record in records if record["model"] == name]
        reached = []
        for fraction in (1, 4, 10):
            first = next((record for record in mine if record["fcd"] <= target / fraction), None)
            reached.append(f"T/{fraction}: " + (f"{first['train_seconds']:.0f} s (epoch {first['epoch']})" if first else "not reached"))
        print(f"{name:22} " + ";  ".join(reached))


if __name__ == "__main__":
    main()
