"""ZSCRGAN (CIKM 2020) on TensorFlow 2: see README.md and docs/algorithm.md."""
import os

# Every entry point imports this package before TensorFlow: hide TensorFlow's C++ log lines
# unless the user set a level. Its errors reach us as exceptions; what it logs at ERROR level on
# its own is noise here (no CUDA driver on a CPU machine; a compile-cache entry read as text
# before binary; CPU tuning flags named as missing features when a cached executable loads).
# The few lines it prints before its logging starts cannot be hidden: README.md lists them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
