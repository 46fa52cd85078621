"""A run folder's format (docs/algorithm.md §11.1): its paths, history, selection rule, dumps, checkpoints, a sweep trial's status.
Knows nothing of how a run is trained, of Ray or of the command line."""
