"""Train ZSCRGAN on one dataset: `python run_exp.py --dataset NAME [--option VALUE ...]`.

Options and defaults: configs/default.yml (or `python run_exp.py --help`).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zscrgan.experiment import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
