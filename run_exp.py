"""Train ZSCRGAN on one dataset: `python run_exp.py --dataset NAME [--option VALUE ...]`.

    python run_exp.py --dataset NAME --resume       continue the run from its latest checkpoint
    python run_exp.py --dataset NAME --eval_only    evaluate its best checkpoint, write the dump

The same as `zscrgan train` (`python -m zscrgan train`). Options and defaults:
configs/default.yml (or `python run_exp.py --help`). Exit status: 0 done, 1 a write refused
(no space, no permission; continue with --resume), 2 bad input or refused, 3 training
diverged, 130/143 stopped by SIGINT/SIGTERM after checkpointing the round.
"""
from zscrgan.cli import process_main

if __name__ == "__main__":
    process_main("run_exp.py", only="train")
