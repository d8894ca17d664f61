"""Offline sample-quality evaluation of a generator: `keras-dcgan evaluate`.

- `classifier`: the dataset's own classifier (trained here on the train split, cached), whose
  penultimate layer is the feature space of the Fréchet distance;
- `metrics`: the numbers (numpy only): Fréchet distance, classifier score, class shares and
  their KL from uniform, period-2 (checkerboard) spectral power;
- `generators`: one interface over a run dir, an ONNX file and a SavedModel;
- `report`: generated metrics beside the same metrics for real data (train vs test split);
- `command`: the CLI subcommand.
"""
