"""XLA's persistent compile cache: a run's first round without it, with it cold, with it warm.

    python -m benchmarks.bench_compile_cache [--dataset MFEAT] [--epochs 3] [--warm 3]

Each case is a fresh `run_exp.py` process timed end to end, side by side in one run of the
bench, with its own cache folder (ZSCRGAN_COMPILE_CACHE; the --warm runs reuse the folder
"cold" filled). Prints per run the wall time and the first round's E+M time against a steady
round's (round 3 of history.csv) and the warm runs' median ratio, checks that all runs wrote
the same history (minus timings), dumps and checkpoints, then where a process's start goes
(a second fresh process per case: TensorFlow import, data, building the model, tracing the E-step, its first call,
which compiles or loads while the M-step is traced in a second thread, as in a run's first
round, the M-step's first call, and a steady call of each). Prints one JSON line.
"""
import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = ("e_step_s", "m_step_s", "eval_s")
CASES = ("no cache", "cold cache", "warm cache")  # of the start-up breakdown


def fresh_run(dataset, epochs, folder, cache):
    """Wall seconds of one run_exp.py process; its outputs in `folder`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", ZSCRGAN_COMPILE_CACHE=cache)
    env.pop("TF_XLA_FLAGS", None)
    cmd = [sys.executable, os.path.join(ROOT, "run_exp.py"), "--dataset", dataset, "--epochs", str(epochs),
           "--logs_dir", os.path.join(folder, "logs"), "--results_dir", os.path.join(folder, "res")]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def outputs(folder, dataset):
    """(history rows without timings, {file: bytes} of dumps and checkpoints), and the rows' timings."""
    logs = os.path.join(folder, "logs", f"{dataset}_logs")
    with open(os.path.join(logs, "history.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    files = sorted(glob.glob(os.path.join(folder, "res", "*", "*.pkl")) + glob.glob(os.path.join(logs, "latest", "*"))
                   + glob.glob(os.path.join(logs, "best", "*")))
    same = ([{k: v for k, v in r.items() if k not in TIMING} for r in rows],
            {os.path.relpath(p, folder): open(p, "rb").read() for p in files})
    return same, [{k: float(r[k]) for k in TIMING} for r in rows]


def phases(dataset):
    """In this process: seconds of each part of a run's start (printed as one JSON line)."""
    t0 = time.perf_counter()
    from zscrgan.run import compile_cache, loop, steps
    from zscrgan.config import load_config
    compile_cache.enable()
    import tensorflow as tf  # noqa: F401  (its import is timed)
    from zscrgan.model.em import step_counts
    t = {"import_s": time.perf_counter() - t0}
    mark = time.perf_counter()

    def lap(name):
        nonlocal mark
        now = time.perf_counter()
        t[name], mark = now - mark, now

    cfg = load_config(flags={"dataset": dataset})
    cfg, data = loop.load_checked(cfg)
    lap("data_s")
    model, evaluator, _, _ = loop.build(cfg, data)
    e, n, m = step_counts(cfg)
    lap("build_s")
    with steps.frozen_heap():  # as the loop's rounds run
        model.e_step.get_concrete_function(e, n)
        lap("trace_e_s")
        # The first E-step call, the M-step traced beside it in a second thread (as in round 1):
        # trace_m_beside_s is part of first_e_s.
        trace_m = model.m_step.get_concrete_function
        model.m_step.get_concrete_function = lambda *a: (
            trace_m(*a), t.update(trace_m_beside_s=time.perf_counter() - mark))
        float(steps.e_step_tracing_m_step(model, e, n, m)["d_loss"])
        lap("first_e_s")
        float(model.m_step(m)["csem_loss"])
        lap("first_m_s")
        float(model.e_step(e, n)["d_loss"])
        lap("steady_e_s")
        float(model.m_step(m)["csem_loss"])
        lap("steady_m_s")
    print(json.dumps(t))


def fresh_phases(dataset, cache):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", ZSCRGAN_COMPILE_CACHE=cache)
    env.pop("TF_XLA_FLAGS", None)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_compile_cache", "--phases", "--dataset", dataset],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    t = json.loads(out.strip().splitlines()[-1])
    beside = t.pop("trace_m_beside_s")
    t["process_s"] = time.perf_counter() - t0 - sum(t.values())  # interpreter start and exit
    t["trace_m_beside_s"] = beside
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="MFEAT")
    parser.add_argument("--epochs", type=int, default=3, help="rounds per run (at least 3)")
    parser.add_argument("--warm", type=int, default=3, help="warm-cache runs (their median ratio is the figure)")
    parser.add_argument("--phases", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases:
        return phases(args.dataset)
    cases = ["no cache", "cold cache"] + [f"warm cache {i + 1}" for i in range(args.warm)]
    results, same, starts = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            cache = "off" if case == "no cache" else os.path.join(tmp, "xla")
            wall = fresh_run(args.dataset, args.epochs, os.path.join(tmp, case.replace(" ", "_")), cache)
            same[case], rounds = outputs(os.path.join(tmp, case.replace(" ", "_")), args.dataset)
            first, steady = (rounds[i]["e_step_s"] + rounds[i]["m_step_s"] for i in (0, 2))
            results[case] = {"wall_s": wall, "first_round_s": first, "steady_round_s": steady,
                             "ratio": first / steady}
        for case in CASES:
            cache = "off" if case == "no cache" else os.path.join(tmp, "xla_phases")
            starts[case] = fresh_phases(args.dataset, cache)
    identical = all(same[case] == same["no cache"] for case in cases)
    warm = float(np.median([results[c]["ratio"] for c in cases[2:]]))
    print(f"{args.dataset}, {args.epochs} rounds per run, each a fresh process")
    print(f"{'case':<14} {'wall s':>7} {'round 1 E+M s':>14} {'round 3 E+M s':>14} {'round 1 / round 3':>18}")
    for case, r in results.items():
        print(f"{case:<14} {r['wall_s']:7.1f} {r['first_round_s']:14.2f} {r['steady_round_s']:14.2f} "
              f"{r['ratio']:18.1f}")
    print(f"warm cache, median round 1 / round 3: {warm:.2f}")
    print(f"history (minus timings), dumps and checkpoints identical in all {len(cases)}: {identical}")
    names = list(next(iter(starts.values())))
    print("\nwhere a process's start goes (s): " + ", ".join(names))
    for case, t in starts.items():
        print(f"{case:<12} " + " ".join(f"{t[k]:6.2f}" for k in names))
    print(json.dumps({"runs": results, "warm_ratio": warm, "identical": identical, "start": starts}))


if __name__ == "__main__":
    main()
