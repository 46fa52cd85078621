"""Datasets (docs/algorithm.md §1): the folder format, its safe loader and writer, converters, synthetic data, validation splits.
Knows nothing of TensorFlow, the model or runs."""
