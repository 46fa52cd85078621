"""One module per command (train, sweep, report, inspect, baselines, prepare, export, retrieve, devices): its flags and its main.
Knows nothing of the other tools: what two tools share lives a floor down (toolkit, sweeps, results, model)."""
