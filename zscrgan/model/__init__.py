"""The algorithm (docs/algorithm.md §2-§7): networks, losses, optimizers, sampler, the compiled E- and M-steps, evaluation, ranking, baselines.
Knows nothing of files, folders, runs or the command line."""
