"""The algorithm (docs/algorithm.md §2-§7): networks, losses, optimizers, sampler, the compiled E- and M-steps, evaluation, ranking, baselines, the golden check.
Knows nothing of files (but its own golden vector), folders, runs or the command line."""
