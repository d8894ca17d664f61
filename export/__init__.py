"""Export of the trained generator: TF Serving SavedModel, ONNX, manifest.

    from keras_dcgan.export import export_generator
    result = export_generator("runs/dcgan", "exports")   # -> exports/dcgan/1/

The heavy modules (TensorFlow, tf2onnx) load on first use, so the CLI's --help stays instant.
"""

from keras_dcgan.export.errors import ExportError, ParityError

__all__ = ["ExportError", "ExportResult", "ParityError", "export_generator"]


def __getattr__(name):
    if name in ("export_generator", "ExportResult"):
        from keras_dcgan.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
