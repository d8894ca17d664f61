"""What `keras-dcgan fit` is asked to do, in two parts.

- `TrainConfig`, the experiment: data, networks, optimisers, seed, precision. Saved as the
  run directory's config.json; resuming with any different value is refused, since the
  checkpoints would then belong to another experiment.
- `RunOptions`, where and how to run it: run dir, data folder, epochs, strategy, backups,
  evaluation during training. Flags only: a resumption may change any of them.

Every field of both is a CLI flag (`--field-name`, built from the field's metadata in cli.py).
"""

import dataclasses
import json
import math
from dataclasses import dataclass, field

from keras_dcgan import contract

STRATEGIES = ("auto", "default", "mirrored", "multi-worker", "tpu")
UPSAMPLING_MODES = ("transpose", "resize-conv")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
LABEL_CONDITIONINGS = ("classifier", "projection")
GAN_LOSSES = ("hinge", "non-saturating")


def _option(default, help, **kwargs):
    return field(default=default, metadata={"help": help, **kwargs})


def _check_at_least_one(values, names):
    for name in names:
        if getattr(values, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(values, name)}")


def _check_choices(values):
    """ValueError for any field whose value is not among the `choices` of its metadata (the CLI's too)."""
    for config_field in dataclasses.fields(values):
        allowed = config_field.metadata.get("choices")
        if allowed is not None and getattr(values, config_field.name) not in allowed:
            raise ValueError(f"{config_field.name} must be one of {', '.join(allowed)}; got {getattr(values, config_field.name)!r}")


def _check_type(config_field, value, source):
    """ValueError unless `value` (read from JSON) has the field's type; an int is a float too."""
    expected = config_field.metadata.get("type", type(config_field.default))
    if value is None and config_field.default is None:
        return
    accepted = (int, float) if expected is float else expected
    if isinstance(value, bool) is not (expected is bool) or not isinstance(value, accepted):
        raise ValueError(f"{source}: {config_field.name} must be {'a number' if expected is float else expected.__name__}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The experiment: everything that decides what the checkpoints hold."""

    # Data
    dataset: str = _option("mnist", "TFDS dataset name (any 28x28x1 image dataset, e.g. fashion_mnist)")
    max_examples: int | None = _option(None, "use only the first N training examples (quick runs)", type=int)
    batch_size: int = _option(
        64, "global batch size, split evenly over the replicas; smaller batches take more, cheaper steps per epoch"
    )
    # The generator learns faster than the discriminator: at the paper's equal rates the
    # discriminator wins early.
    generator_lr: float = _option(
        4e-4, "Adam learning rate of the generator; higher learns faster early but leaves the weights swinging"
    )
    discriminator_lr: float = _option(
        1e-4, "Adam learning rate of the discriminator; higher lets it outpace the generator"
    )
    beta1: float = _option(0.5, "Adam beta_1 of both optimisers")
    # Rates that reach 0 as the run ends (as SN-GAN trains) let the weights settle there instead
    # of ending wherever they happen to be.
    learning_rate_decay: float = _option(
        1.0, "fraction of the run (the last epochs) over which both learning rates fall linearly to 0 "
        "(0: constant rates); the run's length is --epochs, so the best weights come at its end, not midway; "
        "a short run falls over a smaller share of itself, the shorter the smaller, so that it learns at full rates first "
        "(docs/training.md)"
    )
    generator_ema: float = _option(
        0.999, "momentum of an exponential moving average of the generator's weights, which generator.keras "
        "then holds (0: no average, generator.keras holds the last weights); higher smooths more but keeps "
        "early weights longer, so a run too short for it averages with a lower one (the first weights keep under 1 %%)"
    )
    seed: int = _option(0, "seed of data order, latents and weight initialisation")
    # bfloat16 is faster only where the hardware multiplies in it and emulated (slower) elsewhere,
    # so `auto` picks it only where the CPU or GPU has it (precision.py).
    precision: str = _option(
        "auto", "Keras dtype policy for training (exports stay float32); auto: mixed_bfloat16 where the CPU "
        "(AVX512_BF16, AMX) or GPU computes in bfloat16, else float32; mixed_bfloat16 is faster per step "
        "there, and keeps variables, BatchNorm, outputs and losses in float32", choices=PRECISIONS
    )
    # Networks
    latent_dim: int = _option(100, "size of the generator's input noise vector")
    generator_filters: int = _option(64, "channels of the generator's 14x14 layer (its 7x7 layer has twice as many)")
    generator_refine_convs: int = _option(
        2, "stride-1 3x3 convolutions (with BatchNorm, ReLU) after the generator's 14x14 upsampling (0: the paper's); "
        "each costs time per step and buys quality per epoch"
    )
    generator_output_conv: bool = _option(
        True, "end the generator with a 3x3 convolution at 28x28 (its last upsampling then gives "
        "generator_filters/2 channels with BatchNorm, ReLU); false: upsample straight to the image (the paper's)"
    )
    # InfoGAN's categorical code (categorical_code.py) gives each sample one class to draw, so
    # fewer samples fall between digits.
    categorical_code: int = _option(
        10, "categories of an InfoGAN code read from the latent (the largest of its first K values), which the "
        "discriminator learns to name from the image, or, with labels projected, judges the image with "
        "(0: none, the paper's DCGAN); it adds a small head to the discriminator"
    )
    code_labels: bool = _option(
        True, "with a categorical code: the training images' labels condition the discriminator "
        "(--label-conditioning), so category k draws label k (a digit one can ask for); false: the categories "
        "are learnt unsupervised (InfoGAN)"
    )
    # A projection discriminator (Miyato & Koyama 2018) judges image and label together instead of
    # classifying them: the generator is rewarded for drawing each digit as the real ones are
    # drawn, not for making it easy to classify (AC-GAN's pull toward over-certain digits).
    label_conditioning: str = _option(
        "projection", "with code_labels, how the discriminator uses the labels: projection (its real-vs-fake "
        "logit adds the code head's logit of the image's label, or of the fake's category; no classification "
        "loss; samples as varied as real digits) or classifier (AC-GAN: the code head names the real images' "
        "labels and the fakes' categories; asked digits a little surer, samples less varied)",
        choices=LABEL_CONDITIONINGS,
    )
    gan_loss: str = _option(
        "hinge", "the adversarial loss: hinge (as projection discriminators were trained) or non-saturating "
        "(the paper's cross-entropy); both cost the same per step", choices=GAN_LOSSES,
    )
    discriminator_filters: int = _option(64, "channels of the discriminator's first layer (its second has twice as many)")
    # Layers at 14x14 widen what the discriminator sees before it downsamples.
    discriminator_refine_convs: int = _option(
        2, "stride-1 3x3 convolutions (with BatchNorm, LeakyReLU) after the discriminator's first layer (0: the paper's); "
        "each costs time per step and buys quality per epoch"
    )
    leaky_relu_slope: float = _option(0.2, "negative slope of the discriminator's LeakyReLU")
    upsampling: str = _option(
        "resize-conv", "generator upsampling: transposed convolution (the paper's; cheaper, prone to checkerboard "
        "artefacts), or resize then convolve", choices=UPSAMPLING_MODES
    )

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ValueError naming the field for any value that cannot work."""
        _check_at_least_one(self, ("batch_size", "latent_dim", "generator_filters", "discriminator_filters"))
        if self.max_examples is not None and self.max_examples < self.batch_size:
            raise ValueError(
                f"max_examples ({self.max_examples}) must be at least batch_size ({self.batch_size}): "
                "otherwise not one full batch can be formed"
            )
        if self.generator_output_conv and self.generator_filters < 2:
            raise ValueError(
                f"generator_filters must be at least 2 with generator_output_conv (its 28x28 layer has half as many), "
                f"got {self.generator_filters}"
            )
        for name in ("generator_refine_convs", "discriminator_refine_convs", "categorical_code", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.categorical_code == 1 or self.categorical_code > self.latent_dim:
            raise ValueError(
                f"categorical_code must be 0 (none) or 2 to latent_dim ({self.latent_dim}) categories, got {self.categorical_code}"
            )
        for name in ("generator_lr", "discriminator_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite positive number, got {value}")
        for name in ("beta1", "generator_ema", "leaky_relu_slope"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.learning_rate_decay <= 1:
            raise ValueError(f"learning_rate_decay must be in [0, 1] (a fraction of the run), got {self.learning_rate_decay}")
        _check_choices(self)

    @property
    def digit_categories(self):
        """How many digits the run's generator takes (0: none); the export contract's rule."""
        return contract.digit_categories(self.categorical_code, self.code_labels)

    @property
    def code_conditioning(self):
        """What the categorical code's head does (gan.py): None without a code, infogan without labels, else label_conditioning."""
        if not self.categorical_code:
            return None
        return self.label_conditioning if self.digit_categories else "infogan"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source="config"):
        """The config of `values`, which must name every field and no other."""
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a JSON object of the experiment's fields, got {type(values).__name__}")
        known = {config_field.name for config_field in dataclasses.fields(cls)}
        unknown, missing = sorted(set(values) - known), sorted(known - set(values))
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}")
        if missing:
            raise ValueError(f"{source}: missing field(s) {', '.join(missing)}; it was not written by this version of keras-dcgan")
        for config_field in dataclasses.fields(cls):
            _check_type(config_field, values[config_field.name], source)
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from error

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text, source="config"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source} is not valid JSON ({error}); fix or delete it") from error
        return cls.from_dict(values, source)

    def conflicts_with(self, saved):
        """{field: (saved value, this value)} for every field that differs from `saved`."""
        return {
            name: (getattr(saved, name), getattr(self, name))
            for name in self.to_dict()
            if getattr(saved, name) != getattr(self, name)
        }


@dataclass(frozen=True)
class RunOptions:
    """Where and how to run the experiment; any of these may change when a run is resumed."""

    run_dir: str = _option("runs/dcgan", "where config, checkpoints, samples, logs and the generator go")
    data_dir: str | None = _option(
        None, "folder of IDX files (train-images-idx3-ubyte[.gz] ...); used instead of TFDS when given", type=str
    )
    epochs: int = _option(
        10, "number of passes over the training set; also the length over which the learning rates decay, so "
        "more epochs cost time and end at better samples"
    )
    strategy: str = _option("auto", "tf.distribute strategy", choices=STRATEGIES)
    backup_every_steps: int = _option(100, "steps between mid-epoch backups (resume loses at most this much)")
    eval_every: int = _option(
        0, "every N epochs (and after the last) score samples into metrics.json, TensorBoard and metrics.png (0: never)"
    )
    eval_samples: int = _option(10_000, "samples scored by each evaluation during training")
    cache_dir: str | None = _option(
        None, "where the evaluation classifier is cached (default: $KERAS_DCGAN_CACHE_DIR or ~/.cache/keras-dcgan)", type=str
    )

    def __post_init__(self):
        self.validate()

    def validate(self):
        _check_at_least_one(self, ("epochs", "backup_every_steps", "eval_samples"))
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be 0 (never) or a number of epochs, got {self.eval_every}")
        _check_choices(self)
