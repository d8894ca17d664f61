"""The one configuration of a training run.

`TrainConfig` is what `keras-dcgan fit` is asked to do. Every field is a CLI flag
(`--field-name`, built from the field's metadata in `cli.py`), and the whole config is
saved as `run_dir/config.json` so that rerunning on the same run dir can check that
it is resuming the same experiment.
"""

import dataclasses
import json
import os
from dataclasses import dataclass, field

STRATEGIES = ("auto", "default", "mirrored", "multi-worker", "tpu")
UPSAMPLING_MODES = ("transpose", "resize-conv")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")

# What a config.json written before a field existed meant by its absence: the networks had
# no refine nor output convolutions (the paper's). Other missing fields take the default.
FIELDS_ADDED_LATER = {
    "generator_refine_convs": 0, "generator_output_conv": False, "discriminator_refine_convs": 0, "categorical_code": 0,
}

# Fields that may change between a run and its resumption without changing the
# experiment: how long to train, where the data lives, how it is spread over devices.
RESUMABLE_FIELDS = frozenset(
    {"epochs", "data_dir", "run_dir", "strategy", "backup_every_steps", "eval_every", "eval_samples", "cache_dir"}
)


def _option(default, help, **kwargs):
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainConfig:
    # Data
    dataset: str = _option("mnist", "TFDS dataset name (any 28x28x1 image dataset, e.g. fashion_mnist)")
    data_dir: str | None = _option(
        None, "folder of IDX files (train-images-idx3-ubyte[.gz] ...); used instead of TFDS when given", type=str
    )
    max_examples: int | None = _option(None, "use only the first N training examples (quick runs)", type=int)
    # Training
    run_dir: str = _option("runs/dcgan", "where config, checkpoints, samples, logs and the generator go")
    # With the categorical code the classifier score still rose by ~0.04 per epoch after epoch
    # 15 (9.41 there, 9.51-9.55 at epochs 17-20; README, "The default run"): 20 epochs pass the
    # issue's 9.5 with a margin, 15 only on some runs. `--epochs 15` saves a quarter of the time.
    epochs: int = _option(20, "number of passes over the training set")
    # Tuned on MNIST (README, quality section): the paper's batch 128 and Adam 2e-4 for both
    # networks let the discriminator win early; half the batch (twice the steps per epoch at
    # almost the same images/s) and a generator learning 8x faster than the discriminator
    # reached a given FCD in far less time.
    batch_size: int = _option(64, "global batch size, split evenly over the replicas")
    generator_lr: float = _option(8e-4, "Adam learning rate of the generator")
    discriminator_lr: float = _option(1e-4, "Adam learning rate of the discriminator")
    beta1: float = _option(0.5, "Adam beta_1 of both optimisers")
    # With the generator's fast learning rate its last weights swing from epoch to epoch; their
    # average over the last ~1,000 steps scored better from epoch 3 on (README, quality section).
    generator_ema: float = _option(
        0.999, "momentum of an exponential moving average of the generator's weights, which generator.keras "
        "then holds (0: no average, generator.keras holds the last weights)"
    )
    seed: int = _option(0, "seed of data order, latents and weight initialisation")
    strategy: str = _option("auto", "tf.distribute strategy", choices=STRATEGIES)
    # mixed_bfloat16: 1.50x the float32 img/s of these defaults on this project's CPUs (1.35x for
    # the paper's networks) at equal sample quality (README, quality section); variables,
    # BatchNorm, outputs, logits and losses stay float32. Without bf16 hardware it is slower,
    # so `auto` picks it only where the CPU or GPU has it (precision.py).
    precision: str = _option(
        "auto", "Keras dtype policy for training (exports stay float32); auto: mixed_bfloat16 where the CPU "
        "(AVX512_BF16, AMX) or GPU computes in bfloat16, else float32", choices=PRECISIONS
    )
    backup_every_steps: int = _option(100, "steps between mid-epoch backups (resume loses at most this much)")
    # Quality measured during training (keras-dcgan evaluate's metrics)
    eval_every: int = _option(
        0, "every N epochs (and after the last) score samples into metrics.json, TensorBoard and metrics.png (0: never)"
    )
    eval_samples: int = _option(10_000, "samples scored by each evaluation during training")
    cache_dir: str | None = _option(
        None, "where the evaluation classifier is cached (default: $KERAS_DCGAN_CACHE_DIR or ~/.cache/keras-dcgan)", type=str
    )
    # Networks
    latent_dim: int = _option(100, "size of the generator's input noise vector")
    generator_filters: int = _option(64, "channels of the generator's 14x14 layer (its 7x7 layer has twice as many)")
    # Two refine convolutions and resize-conv upsampling together reached a given FCD in less
    # training time than one convolution with transposed upsampling (two seeds; each alone on
    # three and two seeds) for 1.16x the time per epoch; README, "Tuning the defaults".
    generator_refine_convs: int = _option(
        2, "stride-1 3x3 convolutions (with BatchNorm, ReLU) after the generator's 14x14 upsampling (0: the paper's)"
    )
    generator_output_conv: bool = _option(
        True, "end the generator with a 3x3 convolution at 28x28 (its last upsampling then gives "
        "generator_filters/2 channels with BatchNorm, ReLU); false: upsample straight to the image (the paper's)"
    )
    # InfoGAN's categorical code (categorical_code.py): at epoch 7 it scored 9.46 against 8.67
    # and reached FCD 3.5 against 5.6, with 6 % of samples unsure against 15 %, for 1.05x the
    # time per epoch (README, "Tuning the defaults", run 20).
    categorical_code: int = _option(
        10, "categories of an InfoGAN code read from the latent (the largest of its first K values), which the "
        "discriminator learns to name from the image (0: none, the paper's DCGAN)"
    )
    # AC-GAN's auxiliary classifier (Odena et al. 2017) on the InfoGAN code: the head that
    # names the fakes' category also learns the real images' labels, so category k draws
    # label k and a caller can ask for a digit. Measured interleaved (docs/digits.md): score 9.76
    # at epoch 2 against 8.09 without, asked digits 99.7 % right at epoch 3, FCD lower at every epoch.
    code_labels: bool = _option(
        True, "with a categorical code: its head also learns the training images' labels, so category k draws "
        "label k (a digit one can ask for); false: the categories are learnt unsupervised (InfoGAN)"
    )
    discriminator_filters: int = _option(64, "channels of the discriminator's first layer (its second has twice as many)")
    # Layers at 14x14 widen what the discriminator sees before it downsamples: one reached a
    # given FCD in 0.6-0.8x the training time of none (three seeds), two gave 10-25 % lower FCD
    # than one at equal training time (two seeds); README, "Tuning the defaults".
    discriminator_refine_convs: int = _option(
        2, "stride-1 3x3 convolutions (with BatchNorm, LeakyReLU) after the discriminator's first layer (0: the paper's)"
    )
    leaky_relu_slope: float = _option(0.2, "negative slope of the discriminator's LeakyReLU")
    upsampling: str = _option(
        "resize-conv", "generator upsampling: transposed convolution, or resize then convolve", choices=UPSAMPLING_MODES
    )

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ValueError naming the field for any value that cannot work."""
        positive = [
            "epochs", "batch_size", "latent_dim", "generator_filters", "discriminator_filters", "backup_every_steps", "eval_samples"
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
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
        if self.categorical_code == 1 or self.categorical_code > self.latent_dim:
            raise ValueError(
                f"categorical_code must be 0 (none) or 2 to latent_dim ({self.latent_dim}) categories, got {self.categorical_code}"
            )
        for name in ("generator_refine_convs", "discriminator_refine_convs", "categorical_code"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("generator_lr", "discriminator_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.beta1 < 1:
            raise ValueError(f"beta1 must be in [0, 1), got {self.beta1}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be 0 (never) or a number of epochs, got {self.eval_every}")
        if not 0 <= self.generator_ema < 1:
            raise ValueError(f"generator_ema must be in [0, 1), got {self.generator_ema}")
        if not 0 <= self.leaky_relu_slope < 1:
            raise ValueError(f"leaky_relu_slope must be in [0, 1), got {self.leaky_relu_slope}")
        for name, allowed in (("strategy", STRATEGIES), ("upsampling", UPSAMPLING_MODES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source="config"):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}")
        return cls(**{**FIELDS_ADDED_LATER, **values})

    def save(self, path):
        """Write as JSON, atomically (a reader never sees half a file)."""
        temporary = f"{path}.tmp"
        with open(temporary, "w") as file:
            json.dump(self.to_dict(), file, indent=2, sort_keys=True)
            file.write("\n")
        os.replace(temporary, path)

    @classmethod
    def load(cls, path):
        try:
            with open(path) as file:
                values = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); fix or delete it") from error
        return cls.from_dict(values, source=str(path))

    def conflicts_with(self, saved):
        """Fields whose values differ from `saved` and would change the experiment."""
        return {
            name: (getattr(saved, name), getattr(self, name))
            for name in self.to_dict()
            if name not in RESUMABLE_FIELDS and getattr(saved, name) != getattr(self, name)
        }
