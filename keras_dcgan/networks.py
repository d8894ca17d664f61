"""The generator and the discriminator, following the DCGAN paper's guidelines.

Radford et al. 2015: strided convolutions instead of pooling; BatchNorm in both networks
but not on the generator's output nor the discriminator's input; ReLU in the generator
with a tanh output; LeakyReLU(0.2) in the discriminator; weights from N(0, 0.02).

Sizes for 28x28x1 (f = generator_filters, d = discriminator_filters):

    generator      latent -> [one_hot(argmax(latent[:k])), latent] (categorical_code k > 0)
                   -> Dense 7*7*2f -> BN, ReLU -> reshape 7x7x2f
                   -> up x2 to 14x14xf -> BN, ReLU
                   -> [conv 3x3/1 to 14x14xf -> BN, ReLU] x generator_refine_convs
                   -> up x2 to 28x28x(f/2) -> BN, ReLU -> conv 3x3/1 to 28x28x1 -> tanh
                      (generator_output_conv; without it: up x2 to 28x28x1 -> tanh, the paper's)
    discriminator  28x28x1 -> conv 4x4/2 to 14x14xd -> LeakyReLU
                   -> [conv 3x3/1 to 14x14xd -> BN, LeakyReLU] x discriminator_refine_convs
                   -> conv 4x4/2 to 7x7x2d -> BN, LeakyReLU -> flatten -> Dense 1 (a logit)
                   and, with a categorical code, a second head on the flattened features:
                   Dense 128 -> LeakyReLU -> Dense k (logits of the code, InfoGAN's Q; with
                   labels projected, the logit of an image's label adds to its real-vs-fake logit)

The paper's generators have only (transposed) convolutions that upsample; with just two of
them at 28x28, the layers that draw the strokes see little. Stride-1 convolutions at 14x14
("refine") and at 28x28 (the output convolution) give them that capacity cheaply, and
refine convolutions after the discriminator's first layer (two by default) give it a judge to
match: each cut the FCD reached in equal training time (docs/quality-and-speed.md).

"Up x2" is, with `upsampling="resize-conv"` (the default), nearest-neighbour resizing
followed by a 3x3 convolution, which cannot produce checkerboard artifacts (Odena et al.,
"Deconvolution and Checkerboard Artifacts", distill.pub 2016), or, with "transpose", a 4x4
transposed convolution with stride 2 (the paper's; kernel divisible by the stride, which
avoids most of them).

Under a mixed-precision policy the generator's last layer and the discriminator's logit
layer compute in float32, so images, logits and losses keep full precision (Keras'
mixed-precision guide); the costly middle layers run in bfloat16.

BatchNorm is `synchronized=True`: under several replicas the statistics are those of the
global batch, so training does not change with the number of devices, and the moving
statistics stay identical on every worker. With one replica the networks that train
use TensorFlow's fused BatchNorm kernel (fused_batch_norm.py: same maths, one kernel); the
float32 copies that are saved and exported are built with `fused_batch_norm=False`, so
generator.keras holds Keras' own BatchNormalization (and the categorical code's one small layer).
Momentum 0.9 (PyTorch's 0.1) lets the generator's moving statistics, used at inference
and in every export, follow the fast-changing weights of GAN training.
"""

import keras
from keras import layers

from keras_dcgan.categorical_code import CategoricalCode
from keras_dcgan.data import IMAGE_SHAPE
from keras_dcgan.fused_batch_norm import FusedTrainingBatchNormalization

KERNEL_SIZE = 4


def _initializer(seed):
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=seed)


def _batch_norm(name, fused):
    layer_class = FusedTrainingBatchNormalization if fused else layers.BatchNormalization
    return layer_class(
        momentum=0.9,
        epsilon=1e-5,
        synchronized=True,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02),
        name=name,
    )


def _upsample(filters, mode, name, seed, activation=None, use_bias=False, dtype=None):
    """Double height and width, ending in `filters` channels (`dtype`: override the policy)."""
    convolution = dict(
        padding="same",
        use_bias=use_bias,
        activation=activation,
        kernel_initializer=_initializer(seed),
        dtype=dtype,
        name=name,
    )
    if mode == "transpose":
        return [layers.Conv2DTranspose(filters, KERNEL_SIZE, strides=2, **convolution)]
    if mode == "resize-conv":
        return [
            layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize"),
            layers.Conv2D(filters, 3, **convolution),
        ]
    raise ValueError(f"upsampling must be 'transpose' or 'resize-conv', got {mode!r}")


def _refine(count, filters, seed, fused_batch_norm, slope=None):
    """`count` stride-1 3x3 convolutions at 14x14, each with BatchNorm and ReLU (LeakyReLU(slope))."""
    stack = []
    for index in range(1, count + 1):
        name = f"refine_14x14_{index}"
        activation = layers.ReLU(name=f"{name}_relu") if slope is None else layers.LeakyReLU(
            negative_slope=slope, name=f"{name}_lrelu"
        )
        stack += [
            layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=_initializer(seed + index), name=name),
            _batch_norm(f"{name}_bn", fused_batch_norm),
            activation,
        ]
    return stack


def _output(config, seed, fused_batch_norm):
    """The last upsampling to 28x28 and the tanh image, in float32 under mixed precision."""
    if not config.generator_output_conv:
        return _upsample(IMAGE_SHAPE[-1], config.upsampling, "up_28x28", seed, activation="tanh", use_bias=True, dtype="float32")
    return [
        *_upsample(config.generator_filters // 2, config.upsampling, "up_28x28", seed),
        _batch_norm("up_28x28_bn", fused_batch_norm),
        layers.ReLU(name="up_28x28_relu"),
        layers.Conv2D(
            IMAGE_SHAPE[-1], 3, padding="same", activation="tanh", kernel_initializer=_initializer(seed + 10),
            dtype="float32", name="to_image",
        ),
    ]


def build_generator(config, fused_batch_norm=True):
    """latent [batch, latent_dim] -> images [batch, 28, 28, 1] in [-1, 1].

    `fused_batch_norm=False` builds with Keras' own BatchNormalization (for saved copies).
    """
    filters = config.generator_filters
    seed = config.seed
    stack = [
        keras.Input((config.latent_dim,), name="latent"),
        *_categorical_code(config),
        layers.Dense(7 * 7 * 2 * filters, use_bias=False, kernel_initializer=_initializer(seed), name="project"),
        _batch_norm("project_bn", fused_batch_norm),
        layers.ReLU(name="project_relu"),
        layers.Reshape((7, 7, 2 * filters), name="to_7x7"),
        *_upsample(filters, config.upsampling, "up_14x14", seed + 1),
        _batch_norm("up_14x14_bn", fused_batch_norm),
        layers.ReLU(name="up_14x14_relu"),
        *_refine(config.generator_refine_convs, filters, seed + 2, fused_batch_norm),
        *_output(config, seed + 2, fused_batch_norm),
    ]
    return keras.Sequential(stack, name="generator")


def _categorical_code(config):
    """The code layer, in float32 under mixed precision: in bfloat16 neighbouring latent values would tie."""
    if not config.categorical_code:
        return []
    return [CategoricalCode(config.categorical_code, dtype="float32", name="categorical_code")]


def build_discriminator(config, fused_batch_norm=True):
    """images [batch, 28, 28, 1] in [-1, 1] -> one real-vs-fake logit [batch, 1].

    With a categorical code (config.categorical_code k > 0) it returns [logit [batch, 1],
    code logits [batch, k]]: the second head recovers the generator's code from the image or, with labels
    projected (gan.py), gives the logit of each label that adds to the real-vs-fake logit.
    """
    filters = config.discriminator_filters
    slope = config.leaky_relu_slope
    seed = config.seed + 10
    stack = [
        keras.Input(IMAGE_SHAPE, name="images"),
        layers.Conv2D(filters, KERNEL_SIZE, strides=2, padding="same", kernel_initializer=_initializer(seed), name="down_14x14"),
        layers.LeakyReLU(negative_slope=slope, name="down_14x14_lrelu"),
        *_refine(config.discriminator_refine_convs, filters, seed + 2, fused_batch_norm, slope=slope),
        layers.Conv2D(
            2 * filters,
            KERNEL_SIZE,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=_initializer(seed + 1),
            name="down_7x7",
        ),
        _batch_norm("down_7x7_bn", fused_batch_norm),
        layers.LeakyReLU(negative_slope=slope, name="down_7x7_lrelu"),
        layers.Flatten(name="flatten"),
    ]
    logit = layers.Dense(1, kernel_initializer=_initializer(seed + 2), dtype="float32", name="logit")
    if not config.categorical_code:
        return keras.Sequential([*stack, logit], name="discriminator")
    code_head = [
        layers.Dense(128, kernel_initializer=_initializer(seed + 3), name="code_hidden"),
        layers.LeakyReLU(negative_slope=slope, name="code_hidden_lrelu"),
        layers.Dense(config.categorical_code, kernel_initializer=_initializer(seed + 4), dtype="float32", name="code_logits"),
    ]
    images = stack[0]
    features = _apply(stack[1:], images)
    return keras.Model(images, [logit(features), _apply(code_head, features)], name="discriminator")


def _apply(stack, tensor):
    for layer in stack:
        tensor = layer(tensor)
    return tensor
