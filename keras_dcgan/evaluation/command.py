"""`keras-dcgan evaluate SOURCE`: sample quality of a run dir, an ONNX file or a SavedModel."""

import os
import sys

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
    evaluate.add_argument("--epoch", type=int, default=None, help="evaluate checkpoints/epoch-N of a run dir")
    evaluate.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="generated (and real) images to score (default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0, help="first latent seed; samples use seeds SEED.. (default: %(default)s)")
    evaluate.add_argument("--data-dir", default=None, help="folder of IDX files of the run's dataset (default: TFDS)")
    evaluate.add_argument("--dataset", default=None, help="TFDS dataset name (default: the run's or the manifest's, else mnist)")
    evaluate.add_argument("--cache-dir", default=None, help="where the classifier is cached (default: $KERAS_DCGAN_CACHE_DIR or ~/.cache/keras-dcgan)")
    evaluate.add_argument("--json", default=None, metavar="PATH", help="also write the scores as JSON to PATH")
    evaluate.set_defaults(handler=run_evaluate)


def load_splits(dataset, data_dir):
    """Train and test LabeledImages of a dataset: an IDX folder if given, else TFDS."""
    from keras_dcgan.data import load_idx_folder, load_tfds

    if data_dir:
        return load_idx_folder(data_dir, "train"), load_idx_folder(data_dir, "test")
    return load_tfds(dataset, "train"), load_tfds(dataset, "test")


def make_evaluator(dataset="mnist", data_dir=None, cache_dir=None, log=print):
    from keras_dcgan.evaluation.classifier import load_or_train_classifier
    from keras_dcgan.evaluation.report import Evaluator

    train, test = load_splits(dataset, data_dir)
    return Evaluator(train, test, load_or_train_classifier(train, test, cache_dir, log=log))


def evaluate_source(source, epoch=None, samples=DEFAULT_SAMPLES, seed=0, dataset=None, data_dir=None, cache_dir=None, log=print):
    """(generated Scores, real Scores, Generator, Evaluator, AskedDigits or None) for one generator source."""
    from keras_dcgan.evaluation.generators import open_generator
    from keras_dcgan.latents import latents_from_seeds

    if samples < 2:
        raise ValueError(f"--samples must be at least 2, got {samples}")
    generator = open_generator(source, epoch)
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
    from keras_dcgan.atomic_write import write_json
    from keras_dcgan.evaluation.report import format_report

    generated, real, generator, evaluator, asked = evaluate_source(
        args.source, args.epoch, args.samples, args.seed, args.dataset, args.data_dir, args.cache_dir,
        log=lambda message: print(message, file=sys.stderr),
    )
    print(format_report(generated, real, f"Evaluation of {generator.description}", evaluator.classifier))
    if asked:
        print(asked.describe())
    if args.json:
        write_json(args.json, {
            "source": os.path.abspath(args.source),
            "epoch": args.epoch,
            "classifier": {"key": evaluator.classifier.key, "test_accuracy": evaluator.classifier.test_accuracy},
            "generated": generated.to_dict(),
            "real_train_vs_test": real.to_dict(),
            **({"asked_digits": asked.to_dict()} if asked else {}),
        })
    return 0
