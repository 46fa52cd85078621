"""`python -m zscrgan <tool> ...`: the same command line as the installed `zscrgan`."""
from zscrgan.cli import process_main

process_main("python -m zscrgan")
