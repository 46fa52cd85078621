"""`python -m zscrgan <tool> ...`: the same command line as the installed `zscrgan`."""
import sys

from zscrgan.cli import main

sys.exit(main(prog="python -m zscrgan"))
