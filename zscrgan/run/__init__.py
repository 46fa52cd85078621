"""The one training loop (docs/algorithm.md §5), --eval_only, signals, kept kernels, the compile cache, a process's devices, one round's timing; writes through zscrgan.results.
Knows nothing of argument parsing, Ray or any tool."""
