"""Export of the trained generator: TF Serving SavedModel, ONNX, manifest."""
