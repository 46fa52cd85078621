"""Sweeps (docs/algorithm.md §11.1): the sweep file and its trials, one trial on a Ray worker, the Tune driver, the sweep's report.
Knows nothing of training beyond calling zscrgan.run, nor of the command line."""
