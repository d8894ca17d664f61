"""`keras-dcgan latent-walk SOURCE`: images along a path through latent space (the DCGAN paper's walk).

The path visits the latents of the given seeds in order (`latents_from_seeds`, the same on
every back end, so a run and its ONNX export walk the same path) and returns to the first,
so the GIF loops. Between two latents it follows the great circle (spherical interpolation):
Gaussian latents concentrate near a sphere, and straight lines through its inside give
atypically short latents; `--linear` gives the paper's straight lines instead.
Writes a looping GIF of the frames and a PNG strip, one row per segment.
"""

import io
import os
import sys

import numpy as np

from keras_dcgan import image_grid
from keras_dcgan.flag_types import integer_flag
from keras_dcgan.latents import MAX_SEED, latents_from_seeds
from keras_dcgan.output_paths import check_output_files, make_parent_folder

# Every frame is held in memory and encoded into one GIF at 4x scale: the cap bounds that memory
# and lies well beyond the length of a walk worth watching.
MAX_FRAMES = 1000


def interpolate(start, end, fractions, spherical=True):
    """Latents from `start` to `end` (excluded) at `fractions` in [0, 1)."""
    fractions = np.asarray(fractions, dtype=np.float64)[:, np.newaxis]
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    cosine = np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end))
    angle = np.arccos(np.clip(cosine, -1.0, 1.0))
    if not spherical or angle < 1e-6:
        return ((1 - fractions) * start + fractions * end).astype(np.float32)
    return ((np.sin((1 - fractions) * angle) * start + np.sin(fractions * angle) * end) / np.sin(angle)).astype(np.float32)


def check_walk(seeds, steps_per_segment):
    """ValueError unless the walk has at least 2 seeds, 2 steps each, and at most MAX_FRAMES frames."""
    if len(seeds) < 2:
        raise ValueError(f"a walk needs at least 2 seeds, got {len(seeds)}")
    if steps_per_segment < 2:
        raise ValueError(f"--steps must be at least 2, got {steps_per_segment}")
    if len(seeds) * steps_per_segment > MAX_FRAMES:
        raise ValueError(
            f"{len(seeds)} seeds x --steps {steps_per_segment} = {len(seeds) * steps_per_segment} frames; "
            f"a walk has at most {MAX_FRAMES}: lower --steps or pass fewer --seeds"
        )


def walk_latents(seeds, latent_dim, steps_per_segment, spherical=True):
    """[len(seeds) * steps_per_segment, latent_dim]: every seed's latent, then the way to the next one."""
    check_walk(seeds, steps_per_segment)
    anchors = latents_from_seeds(seeds, latent_dim)
    fractions = np.arange(steps_per_segment) / steps_per_segment
    segments = [interpolate(anchors[i], anchors[(i + 1) % len(anchors)], fractions, spherical) for i in range(len(anchors))]
    return np.concatenate(segments)


def write_walk(images, steps_per_segment, gif_path, strip_path=None, scale=4, frame_milliseconds=80):
    """Frames (float [N, 28, 28, 1] in [0, 1]) as a looping GIF (enlarged `scale` times) and a strip PNG."""
    pixels = image_grid.to_uint8(images, value_range=(0.0, 1.0))
    enlarged = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    frames = [io.BytesIO(image_grid.png_bytes(frame)) for frame in enlarged]
    image_grid.write_gif(gif_path, frames, frame_milliseconds=frame_milliseconds)
    if strip_path:
        image_grid.write_png(strip_path, image_grid.tile(pixels, columns=steps_per_segment))


def parse_seeds(text):
    """--seeds as a list of seeds, or ValueError naming the flag and the valid range."""
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be integers separated by commas, got {text!r}") from None
    invalid = [seed for seed in seeds if not 0 <= seed <= MAX_SEED]
    if invalid:
        raise ValueError(f"--seeds must be integers in [0, {MAX_SEED}], got {invalid[0]}")
    return seeds


def check_walk_outputs(args):
    """The strip's path, once the GIF's and the strip's can be written (before any work: nothing is lost)."""
    strip = args.strip or f"{os.path.splitext(args.output)[0]}.png"
    if os.path.abspath(strip) == os.path.abspath(args.output):
        raise ValueError(f"--strip {strip} is the --output file itself: give the GIF a .gif name, or pass another --strip")
    check_output_files([args.output], "--output", args.force)
    check_output_files([strip], "--strip", args.force)
    return strip


def run_latent_walk(args):
    from keras_dcgan.evaluation.generators import open_generator

    seeds = parse_seeds(args.seeds)
    check_walk(seeds, args.steps)  # before the generator is loaded
    strip = check_walk_outputs(args)
    generator = open_generator(args.source, args.epoch, verify=not args.no_verify)
    latents = walk_latents(seeds, generator.latent_dim, args.steps, spherical=not args.linear)
    images = generator.generate(latents)
    try:
        for path in (args.output, strip):
            make_parent_folder(path)
        write_walk(images, args.steps, args.output, strip)
    except OSError as error:
        raise ValueError(f"cannot write {error.filename or args.output}: {error.strerror or error}") from error
    print(f"Latent walk through seeds {seeds} ({len(images)} frames) from {generator.description}: {args.output}, {strip}",
          file=sys.stderr)
    return 0


def add_latent_walk_command(commands):
    walk = commands.add_parser(
        "latent-walk",
        help="GIF and PNG strip of images along a path between seeded latents",
        description=__doc__.split("\n\n")[1],
    )
    walk.add_argument("source", help="run dir, .onnx file, or SavedModel folder")
    walk.add_argument("--seeds", default="0,1,2,3", help="comma-separated latent seeds to visit in order (default: %(default)s)")
    walk.add_argument("--steps", type=int, default=16, help=f"frames from one seed to the next; seeds x steps at most {MAX_FRAMES} (default: %(default)s)")
    walk.add_argument("--epoch", type=integer_flag(1), default=None, help="use checkpoints/epoch-N of a run dir")
    walk.add_argument("--linear", action="store_true", help="straight lines between latents instead of great circles")
    walk.add_argument("--output", default="latent_walk.gif", help="GIF to write (default: %(default)s)")
    walk.add_argument("--strip", default=None, help="PNG strip to write (default: the GIF's name with .png)")
    walk.add_argument("--force", action="store_true", help="overwrite --output and --strip if they exist (without it, that is an error)")
    walk.add_argument("--no-verify", action="store_true", help="walk an .onnx file that has no manifest.json beside it, unchecked")
    walk.set_defaults(handler=run_latent_walk)
