"""`keras-dcgan export RUN_DIR`: the CLI face of `export_generator`."""

import logging
import os

from keras_dcgan.export.digit_input import DEFAULT_DIGIT_SAMPLES
from keras_dcgan.flag_types import integer_flag
from keras_dcgan.output_paths import check_output_folder

DEFAULT_EXPORT_ROOT = "exports"
DEFAULT_NAME = "dcgan"
MAX_DIGIT_SAMPLES = 100_000  # generated and scored in one batch: 100,000 images are ~300 MB of float32 pixels


def run_export(args):
    check_output_folder(os.path.join(args.out, args.name), "--out")  # before the generator is loaded and converted
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines drown the result
    from keras_dcgan.export.exporter import export_generator

    result = export_generator(
        args.run_dir, args.out, name=args.name, version=args.version, epoch=args.epoch, edge_variants=args.edge_variants,
        data_dir=args.data_dir, cache_dir=args.cache_dir, digit_samples=args.digit_samples,
    )
    manifest = result.manifest
    source = manifest["source"]
    worst = max(manifest["parity"]["max_abs_difference"].values())
    print(
        f"Exported {source['checkpoint']} of {source['run_dir']} (step {source['step']}) as version {result.version}:\n"
        f"  SavedModel  {result.version_dir}  signatures: {', '.join(manifest['signatures'])}\n"
        f"  ONNX        {result.onnx_path}  (opset {manifest['onnx']['opset']})\n"
        f"  LiteRT      {os.path.join(result.version_dir, manifest['litert']['file'])}  (builtin operators only)\n"
        f"  manifest    {result.manifest_path}\n"
        f"  parity      max abs difference to Keras {worst:.2g} (tolerance {manifest['parity']['tolerance']:g})"
    )
    for format_name, key in (("ONNX", "onnx_variants"), ("LiteRT", "litert_variants")):
        for variant, described in manifest.get(key, {}).items():
            print(f"  {variant:<11} {described['file']}  {described['bytes']:,} bytes, "
                  f"max abs difference to float32 {format_name} {described['max_abs_difference']:.2g}")
    return 0


def add_export_command(commands):
    export = commands.add_parser(
        "export",
        help="export a run's generator as a TF Serving SavedModel + ONNX + LiteRT + manifest",
        description="Export the generator of RUN_DIR (final, or --epoch N) to EXPORT_ROOT/NAME/VERSION/: "
        "a TF Serving SavedModel, generator.onnx, generator.tflite and manifest.json, after checking each against Keras.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a keras-dcgan fit run dir")
    export.add_argument("--out", default=DEFAULT_EXPORT_ROOT, metavar="EXPORT_ROOT", help="export root (default: %(default)s)")
    export.add_argument("--name", default=DEFAULT_NAME, help="model name, the folder TF Serving serves (default: %(default)s)")
    export.add_argument("--version", type=integer_flag(1), default=None, help="version number (default: the next free one); never overwritten")
    export.add_argument("--epoch", type=integer_flag(1), default=None, help="export the checkpoint of this epoch instead of generator.keras")
    export.add_argument(
        "--edge-variants", action="store_true",
        help="also write generator.float16.onnx, generator.int8.onnx and generator.dynamic_int8.tflite (smaller; docs/export.md has their accuracy)",
    )
    export.add_argument(
        "--data-dir", default=None,
        help="folder of IDX files of the run's dataset, to score a digit input (default: TFDS)",
    )
    export.add_argument(
        "--digit-samples", type=integer_flag(1, MAX_DIGIT_SAMPLES, " samples (they are scored in one batch)"),
        default=DEFAULT_DIGIT_SAMPLES, metavar="N",
        help="seeded samples the evaluation classifier scores to record how often a generator that takes digits "
        f"draws the digit asked, at most {MAX_DIGIT_SAMPLES:,} (default: %(default)s)",
    )
    export.add_argument(
        "--cache-dir", default=None,
        help="where the evaluation classifier is cached (default: $KERAS_DCGAN_CACHE_DIR or ~/.cache/keras-dcgan)",
    )
    export.set_defaults(handler=run_export)
