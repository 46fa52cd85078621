"""Train ZSCRGAN on one dataset: `python run_exp.py --dataset NAME [--option VALUE ...]`.

    python run_exp.py --dataset NAME --resume       continue the run from its latest checkpoint
    python run_exp.py --dataset NAME --eval_only    evaluate its best checkpoint, write the dump

Options and defaults: configs/default.yml (or `python run_exp.py --help`).
Exit status: 0 done, 2 bad input or refused, 3 training diverged, 130/143 stopped by
SIGINT/SIGTERM after checkpointing the round.
"""
import sys

from zscrgan.experiment import main

if __name__ == "__main__":
    sys.exit(main())
