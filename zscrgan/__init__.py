"""ZSCRGAN (CIKM 2020) on TensorFlow 2: see README.md and docs/algorithm.md."""
import os

# Every entry point imports this package before TensorFlow: hide TensorFlow's C++ INFO and
# WARNING start-up lines (CPU features, ...) unless the user set a level. Its errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
