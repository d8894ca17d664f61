"""Which digit each category of a run's categorical code draws.

    .venv/bin/python benchmarks/code_categories.py RUN_DIR [--samples 10000] [--data-dir DIR]

Samples the run's final generator on seeded latents, labels every image with the evaluation
classifier (`keras-dcgan evaluate`'s), groups the images by the category their latent selects
(argmax of its first `categorical_code` values) and prints, per category, its majority digit,
that digit's share, the runner-up's share and the share the classifier names with less than
90 % probability; then the purity (share of samples that are their category's majority digit).
"""

import argparse

import numpy as np

from keras_dcgan.categorical_code import code_indices
from keras_dcgan.evaluation.report import make_evaluator
from keras_dcgan.evaluation.generators import open_generator
from keras_dcgan.latents import latents_from_seeds
from keras_dcgan.run_dir import RunDir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--data-dir", default=None, help="IDX folder of the run's dataset (default: TFDS)")
    args = parser.parse_args(argv)

    config = RunDir(args.run_dir).read_config()
    if not config.categorical_code:
        parser.error(f"{args.run_dir} was trained without a categorical code")
    generator = open_generator(args.run_dir)
    evaluator = make_evaluator(config.dataset, args.data_dir)
    latents = latents_from_seeds(range(args.samples), config.latent_dim)
    _, probabilities = evaluator.classifier.features_and_probabilities(generator.generate(latents))
    digits, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    categories = np.asarray(code_indices(latents, config.categorical_code))

    majority_total = 0
    print("category  samples  digit  share  runner-up  unsure")
    for category in range(config.categorical_code):
        members = categories == category
        counts = np.bincount(digits[members], minlength=probabilities.shape[1])
        majority, runner_up = np.argsort(-counts, kind="stable")[:2]
        majority_total += counts[majority]
        print(f"{category:8d}  {members.sum():7d}  {majority:5d}  {counts[majority] / members.sum():5.1%}  "
              f"{counts[runner_up] / members.sum():9.1%}  {np.mean(confidence[members] < 0.9):6.1%}")
    print(f"purity {majority_total / len(latents):.1%} of {len(latents)} samples")


if __name__ == "__main__":
    main()
