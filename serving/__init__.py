"""Inference side: onnxruntime runner, TF Serving clients, REST server. Never imports TensorFlow."""
