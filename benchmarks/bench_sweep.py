"""Sweep throughput: 4 MFEAT seeds one after another in one process, against the same 4 as a
sweep of 2 concurrent 1-CPU trials.

    python -m benchmarks.bench_sweep [--epochs 30] [--seeds 0,1,2,3]    (from the repository)

Run it as a module from the repository's root (or with the package installed), so that
`zscrgan` imports without any change to sys.path. Both ways run configs/MFEAT.yml (the
demo) with --epochs rounds through `zscrgan.run.loop.run`; each is timed end to end as a fresh command,
Python start, imports, Ray's start and every trial's TensorFlow start included. "One after
another" trains with TensorFlow's default threads (both cores); the sweep gives each trial one
CPU and one thread, and a worker process runs trial after trial on the kernels it traced for
the first (zscrgan/run/kept_kernels.py). Prints a table, where each trial's start went (its start.yml,
`sweep.start_record`), and one JSON line.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from zscrgan.results.run import Run
from zscrgan.results.trials import read_start, trial_folders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SEQUENTIAL = """
from zscrgan.run import loop
from zscrgan.config import load_config
for seed in {seeds}:
    cfg = load_config(flags={{"dataset": "MFEAT", "epochs": {epochs}, "seed": seed, "run_name": f"seed{{seed}}",
                             "datasets_dir": {datasets!r}, "logs_dir": {logs!r}, "results_dir": {results!r}}})
    loop.run(cfg, progress=False)
"""


def timed(cmd, cwd):
    """(wall seconds of the command, {first line starting with a word: seconds until it was printed,
    for the last of the [finished] lines})."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    t0, seen = time.perf_counter(), {}
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        for line in proc.stdout:
            word = line.split(" ", 1)[0]
            if word not in seen or word == "[finished]":
                seen[word] = time.perf_counter() - t0
        proc.wait()
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{err.read()[-3000:]}")
    return seconds, seen


def run_stats(logs_dir):
    """{trial: (best Prec@50, median seconds of a round after the first, round 1's E+M seconds
    beyond a steady round's)} from each history.csv."""
    stats = {}
    for trial in sorted(os.listdir(logs_dir)):
        run = Run.at(os.path.join(logs_dir, trial))
        rows = run.history(missing_ok=False)[1]
        round_s = [sum(r[k] for k in ("e_step_s", "m_step_s", "eval_s")) for r in rows[1:]]
        em = [r["e_step_s"] + r["m_step_s"] for r in rows]
        stats[trial] = (run.scores(run.best_test())["test_at_best"], float(np.median(round_s)),
                        em[0] - float(np.median(em[1:])))
    return stats


def trial_starts(out):
    """{trial: its start.yml} of the sweep's trials in `out`."""
    return {os.path.basename(folder): read_start(folder) for folder in trial_folders(out)}


START_COLUMNS = ("process_s", "tf_import_s", "data_s", "build_s", "trace_s", "compile_s")


def print_starts(starts):
    """One line per trial: its process, and the seconds of each part of its start."""
    print("\nwhere each sweep trial's start went (s); compile_s: round 1's E+M beyond tracing and a steady round")
    print(f"  {'trial':<8}{'pid':>8}{'nth':>4}  " + "".join(f"{c[:-2]:>10}" for c in START_COLUMNS) + "  kernels")
    for trial, t in starts.items():
        seconds = "".join(f"{'-':>10}" if t[c] is None else f"{t[c]:>10.2f}" for c in START_COLUMNS)
        kernels = "kept" if t["reused_kernels"] else "traced"
        print(f"  {trial:<8}{t['pid']:>8}{t['trial_in_process']:>4}  {seconds}  {kernels}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="rounds per run (the demo's full 100 takes ~3x longer)")
    parser.add_argument("--seeds", default="0,1,2,3")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    work = tempfile.mkdtemp(prefix="bench_sweep_")
    try:
        datasets = os.path.join(ROOT, "datasets")
        seq = os.path.join(work, "sequential")
        code = SEQUENTIAL.format(seeds=seeds, epochs=args.epochs, datasets=datasets,
                                 logs=os.path.join(seq, "logs"), results=os.path.join(seq, "results"))
        t_seq, _ = timed([sys.executable, "-c", code], work)

        with open(os.path.join(work, "sweep.yml"), "w") as f:
            json.dump({"datasets": ["MFEAT"], "seeds": seeds, "set": {"epochs": args.epochs, "datasets_dir": datasets},
                       "resources": {"cpus": 1, "gpus": 0}}, f)
        t_sweep, lines = timed([sys.executable, "-m", "zscrgan", "sweep", "sweep.yml", "--out", "sweep",
                                "--max_concurrent", "2"], work)

        seq_stats = run_stats(os.path.join(seq, "logs", "MFEAT_logs"))
        sweep_stats = run_stats(os.path.join(work, "sweep", "logs", "MFEAT_logs"))
        starts = trial_starts(os.path.join(work, "sweep"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = len(seeds)
    rows = [("one after another, one process, default threads", t_seq, seq_stats),
            ("sweep, 2 concurrent 1-CPU trials", t_sweep, sweep_stats)]
    print(f"\n{n} MFEAT runs of {args.epochs} rounds (configs/MFEAT.yml), wall time end to end")
    print(f"  {'mode':<50}{'seconds':>9}{'runs/min':>10}{'round s':>9}   round 1 extra s / best Prec@50 per seed")
    for mode, seconds, stats in rows:
        round_s = np.median([r for _, r, _ in stats.values()])
        print(f"  {mode:<50}{seconds:>9.1f}{60 * n / seconds:>10.2f}{round_s:>9.3f}   "
              + " ".join(f"{extra:.2f}/{best:.4f}" for best, _, extra in stats.values()))
    print(f"  throughput ratio (sweep / one after another): {t_seq / t_sweep:.2f}x (round s: median seconds of "
          "a round after the first, per run; round 1 extra: its E+M beyond a steady round's)")
    first, last = lines["[started]"], lines["[finished]"]
    print(f"  the sweep's own fixed costs: {first:.1f} s to its first [started] line (Python, checks, Ray's start), "
          f"{t_sweep - last:.1f} s after its last [finished] line (report, Ray's shutdown)")
    print_starts(starts)
    as_dict = lambda stats: {k: {"best": b, "round_s": r, "round1_extra_s": x} for k, (b, r, x) in stats.items()}
    print(json.dumps({"bench": "sweep", "runs": n, "epochs": args.epochs, "sequential_s": t_seq,
                      "sweep_s": t_sweep, "ratio": t_seq / t_sweep, "sequential": as_dict(seq_stats),
                      "sweep": as_dict(sweep_stats), "sweep_first_started_s": first,
                      "sweep_after_last_finished_s": t_sweep - last, "sweep_starts": starts}))

if __name__ == "__main__":
    main()
