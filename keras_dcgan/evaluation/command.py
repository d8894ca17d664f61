"""`keras-dcgan evaluate SOURCE`: sample quality of a run dir, an ONNX file or a SavedModel."""

import os
import sys

from keras_dcgan.flag_types import integer_flag
from keras_dcgan.latents import MAX_SEED
from keras_dcgan.output_paths import check_output_files, make_parent_folder

DEFAULT_SAMPLES = 10_000


def add_evaluate_command(commands):
    evaluate = commands.add_parser(
        "evaluate",
        help="measure sample quality (FCD, classifier score, class shares, checkerboard) beside real data",
        description="Generate samples from a run dir (final generator.keras, or --epoch N), an exported .onnx "
        "or .tflite file or a SavedModel folder, and score them with the dataset's own classifier (trained on its "
        "train split on first use, then cached). Real data (train split vs test split) is scored the same way "
        "and printed beside them. For a generator that takes digits, also the share of the samples asked for "
        "each digit that the classifier names as that digit.",
    )
    evaluate.add_argument("source", help="run dir, .onnx or .tflite file, or SavedModel folder")
    evaluate.add_argument("--epoch", type=integer_flag(1), default=None, help="evaluate checkpoints/epoch-N of a run dir")
    evaluate.add_argument(
        "--samples", type=integer_flag(2, MAX_SEED + 1), default=DEFAULT_SAMPLES,
        help="generated (and real) images to score; at most the train split's size is used (default: %(default)s)",
    )
    evaluate.add_argument("--seed", type=integer_flag(0, MAX_SEED), default=0, help="first latent seed; samples use seeds SEED.. (default: %(default)s)")
    evaluate.add_argument("--data-dir", default=None, help="folder of IDX files of the run's dataset (default: TFDS)")
    evaluate.add_argument("--dataset", default=None, help="TFDS dataset name (default: the run's or the manifest's, else mnist)")
    evaluate.add_argument("--cache-dir", default=None, help="where the classifier is cached (default: $KERAS_DCGAN_CACHE_DIR or ~/.cache/keras-dcgan)")
    evaluate.add_argument("--json", default=None, metavar="PATH", help="also write the scores as JSON to PATH (checked before the scoring)")
    evaluate.add_argument("--force", action="store_true", help="overwrite the --json file if it exists (without it, that is an error)")
    evaluate.add_argument("--no-verify", action="store_true", help="evaluate an .onnx file that has no manifest.json beside it, unchecked")
    evaluate.set_defaults(handler=run_evaluate)


def evaluate_source(
    source, epoch=None, samples=DEFAULT_SAMPLES, seed=0, dataset=None, data_dir=None, cache_dir=None, log=print, verify=True,
):
    """(generated Scores, real Scores, Generator, Evaluator, AskedDigits or None) for one generator source.

    `verify=False` scores an ONNX file without checking it against its manifest (--no-verify).
    """
    from keras_dcgan.evaluation.generators import open_generator
    from keras_dcgan.evaluation.report import make_evaluator
    from keras_dcgan.latents import latents_from_seeds

    if samples < 2:
        raise ValueError(f"--samples must be at least 2, got {samples}")
    if not 0 <= seed <= MAX_SEED - samples + 1:
        raise ValueError(f"--seed must be in [0, {MAX_SEED - samples + 1}] so that seed + samples - 1 stays a valid seed, got {seed}")
    generator = open_generator(source, epoch, verify)
    dataset = dataset or generator.data.get("dataset") or "mnist"
    evaluator = make_evaluator(dataset, data_dir, cache_dir, log)
    samples = min(samples, len(evaluator.train))
    images = generator.generate(latents_from_seeds(range(seed, seed + samples), generator.latent_dim))
    asked = None
    if generator.digit_categories:
        from keras_dcgan.evaluation.asked_digits import measure_asked_digits

        asked = measure_asked_digits(
            generator.generate, evaluator.classifier, generator.latent_dim, generator.digit_categories, samples, seed
        )
    return evaluator.evaluate(images), evaluator.real_reference(samples), generator, evaluator, asked


def run_evaluate(args):
    from keras_dcgan.evaluation.report import format_report

    if args.json:
        check_output_files([args.json], "--json", args.force)  # before the minutes of scoring, not after
    generated, real, generator, evaluator, asked = evaluate_source(
        args.source, args.epoch, args.samples, args.seed, args.dataset, args.data_dir, args.cache_dir,
        log=lambda message: print(message, file=sys.stderr), verify=not args.no_verify,
    )
    print(format_report(generated, real, f"Evaluation of {generator.description}", evaluator.classifier))
    if asked:
        print(asked.describe())
    if args.json:
        _write_scores(args.json, {
            "source": os.path.abspath(args.source),
            "epoch": args.epoch,
            "classifier": {"key": evaluator.classifier.key, "test_accuracy": evaluator.classifier.test_accuracy},
            "generated": generated.to_dict(),
            "real_train_vs_test": real.to_dict(),
            **({"asked_digits": asked.to_dict()} if asked else {}),
        })
    return 0


def _write_scores(path, scores):
    """Atomically: a reader never sees half a file, and a failed write leaves the old one."""
    from keras_dcgan.atomic_write import write_json

    try:
        make_parent_folder(path)
        write_json(path, scores)
    except OSError as error:
        raise ValueError(f"cannot write --json {path}: {error.strerror or error}") from error
