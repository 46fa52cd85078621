"""Sweeps on Ray Tune: many ordinary runs (datasets x seeds x a grid of settings) at once.

    python -m zscrgan.sweep SWEEP.yml --out DIR [--resume] [--address ADDR]
                            [--max_concurrent N] [--scheduler fifo|asha]

SWEEP.yml:

    datasets: [MFEAT]                  # dataset folder names (required)
    seeds: [0, 1, 2, 3, 4]             # (required)
    set: {epochs: 50}                  # overrides for every trial: keys of configs/default.yml
    grid: {CSEM_lr: [0.002, 0.001]}    # every combination of these values
    resources: {cpus: 1, gpus: 0}      # per trial (default 1 CPU, no GPU)

Each trial is an ordinary run of `zscrgan.experiment.run` (configs/default.yml, then
configs/<dataset>.yml, then `set`, then the trial's grid values and seed) named
`seed<S>[_<key>=<value>...]`, with `logs_dir` DIR/logs, `results_dir` DIR/results and
`threads` = its CPUs. Its folder DIR/logs/<dataset>_logs/<trial>/ holds the run's usual
files and status.yml (pending, running, finished, failed or stopped; see `new_status`).

Without --address a single-node Ray starts in this process; `--address auto` or HOST:PORT
runs the trials on an existing Ray cluster, whose nodes must see DIR and the datasets at the
same paths. Relative paths mean what they mean here: the driver makes them absolute.

A trial whose process dies is retried from its latest checkpoint (up to MAX_RETRIES times);
a trial with bad input or a diverging loss is recorded as failed and not retried. `--resume`
continues a sweep from DIR/sweep.yml: it runs the pending and running trials, and leaves
finished, failed and stopped ones alone. `--scheduler asha` stops trials whose per-round
Prec@K (on the validation classes, if any) trails the others (Tune's ASHA); they are
recorded as stopped.

Exit status: 0 every trial finished or was stopped by ASHA, 1 some trial failed or did not
finish, 2 bad input (nothing started).
"""
import argparse
import itertools
import logging
import os
import re
import socket
import sys
import time

import yaml

from zscrgan import config as config_lib
from zscrgan.config import ConfigError
from zscrgan.runfiles import LOCK_FILE, LockHeld, RunLock, fault_point, read_history, read_yaml, run_dirs, write_yaml
from zscrgan.selection import best_in_history

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SWEEP_KEYS = ("datasets", "seeds", "set", "grid", "resources")
# Keys each trial gets from the sweep itself; datasets_dir is a path, not a setting to grid over.
OWN_KEYS = ("dataset", "seed", "run_name", "logs_dir", "results_dir", "threads")
NOT_IN_GRID = OWN_KEYS + ("datasets_dir",)
MAX_RETRIES = 3          # restarts of a trial whose process died, each from its latest checkpoint
LOCK_WAIT_S = 60         # how long a trial waits for a previous attempt's process to let go of its folder
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class SweepError(Exception):
    """Bad input: reported as one `error:` line, exit status 2, before anything starts."""


def one_line(text):
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- the sweep file

def _unique_list(value, what, check):
    if not isinstance(value, list) or not value:
        raise SweepError(f"{what} must be a non-empty list, got {value!r}")
    for x in value:
        if not check(x):
            raise SweepError(f"{what}: {x!r} is not allowed")
    if len({repr(x) for x in value}) != len(value):
        raise SweepError(f"{what} lists a value twice")
    return value


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{what} must be a mapping of key: value, got {value!r}")
    return value


def _count(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def load_sweep(path):
    """The sweep file at `path`, checked and resolved: every section present, the resources'
    defaults filled in and `set: datasets_dir` made absolute (relative to the working
    directory). Raises SweepError."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise SweepError(f"{path}: cannot read the sweep file ({e.strerror})")
    except yaml.YAMLError as e:
        raise SweepError(f"{path}: not valid YAML: {one_line(str(e).splitlines()[0])}")
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: a sweep file is a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{path}: unknown key '{unknown[0]}' (a sweep file has {', '.join(SWEEP_KEYS)})")
    for key in ("datasets", "seeds"):
        if key not in raw:
            raise SweepError(f"{path}: '{key}' is missing")
    try:
        datasets = _unique_list(raw["datasets"], "datasets",
                                lambda d: isinstance(d, str) and _DATASET_NAME.match(d))
        seeds = _unique_list(raw["seeds"], "seeds", lambda s: _count(s, 0))
        settings = dict(_mapping(raw.get("set"), "set"))
        grid = _mapping(raw.get("grid"), "grid")
        resources = _mapping(raw.get("resources"), "resources")
        for key in settings:
            if key in OWN_KEYS:
                raise SweepError(f"set: '{key}' is set by the sweep for each trial")
        for key, values in grid.items():
            if key in NOT_IN_GRID:
                raise SweepError(f"grid: '{key}' cannot be a grid key")
            if key in settings:
                raise SweepError(f"'{key}' is in both set and grid")
            _unique_list(values, f"grid: {key}", lambda v: True)
        unknown = [k for k in resources if k not in ("cpus", "gpus")]
        if unknown:
            raise SweepError(f"resources: unknown key '{unknown[0]}' (known: cpus, gpus)")
        cpus, gpus = resources.get("cpus", 1), resources.get("gpus", 0)
        if not _count(cpus, 1):
            raise SweepError(f"resources: cpus must be an integer >= 1, got {cpus!r}")
        if not _count(gpus, 0):
            raise SweepError(f"resources: gpus must be an integer >= 0, got {gpus!r}")
    except SweepError as e:
        raise SweepError(f"{path}: {e}")
    folder = settings.get("datasets_dir", config_lib.defaults()["datasets_dir"])
    if isinstance(folder, str):
        settings["datasets_dir"] = os.path.abspath(folder)
    return {"datasets": datasets, "seeds": seeds, "set": settings, "grid": grid,
            "resources": {"cpus": cpus, "gpus": gpus}}


def _value_text(value):
    return "+".join(map(str, value)) if isinstance(value, list) else str(value)


def trial_name(seed, grid):
    """`seed<S>` then `_<key>=<value>` for each grid key, in the file's order."""
    return f"seed{seed}" + "".join(f"_{k}={_value_text(v)}" for k, v in grid.items())


def trial_configs(sweep, source, out):
    """{"<dataset>/<trial name>": resolved config (a plain dict)} in the order the trials run.

    Layers: configs/default.yml, configs/<dataset>.yml, `set`, the trial's grid values, then
    what the sweep fixes (seed, run name, DIR's folders, threads). Raises SweepError.
    """
    keys = list(sweep["grid"])
    trials = {}
    try:
        for dataset in sweep["datasets"]:
            base = config_lib.load_config(flags={"dataset": dataset})
            base = config_lib.merge(base, sweep["set"], f"{source}: set")
            for seed, values in itertools.product(sweep["seeds"], itertools.product(*sweep["grid"].values())):
                cfg = config_lib.merge(base, dict(zip(keys, values)), f"{source}: grid")
                grid = {k: cfg[k] for k in keys}  # as coerced: 1 and 1.0 of a float key are one value
                name = trial_name(seed, grid)
                cfg.update(seed=seed, run_name=name, logs_dir=os.path.join(out, "logs"),
                           results_dir=os.path.join(out, "results"), threads=sweep["resources"]["cpus"])
                try:
                    config_lib.validate(cfg)
                except ConfigError as e:
                    raise ConfigError(f"{source}: trial {dataset}/{name}: {e}")
                key = f"{dataset}/{name}"
                if key in trials:
                    raise ConfigError(f"{source}: grid: two trials would both be {key}")
                trials[key] = cfg
    except ConfigError as e:
        raise SweepError(str(e))
    return trials


# --------------------------------------------------------------------------- trial status

def log_dir(cfg):
    return run_dirs(cfg["dataset"], cfg["run_name"], cfg["logs_dir"], cfg["results_dir"])[0]


def new_status(cfg, keys):
    """A pending trial's status.yml: the keys of the sweep's shared contract."""
    return {"dataset": cfg["dataset"], "seed": cfg["seed"], "grid": {k: cfg[k] for k in keys},
            "trial": cfg["run_name"], "status": "pending", "error": None, "rounds_done": 0,
            "seconds": 0.0, "attempts": 0, "node": None}


def read_status(cfg):
    return read_yaml(os.path.join(log_dir(cfg), "status.yml"))


def write_status(cfg, status):
    write_yaml(os.path.join(log_dir(cfg), "status.yml"), status, "status")


def rounds_in_history(cfg):
    return len(read_history(os.path.join(log_dir(cfg), "history.csv")))


# --------------------------------------------------------------------------- one trial (on a Ray worker)

def wait_for_lock(folder, timeout=LOCK_WAIT_S):
    """Wait until no process holds the run folder's lock: the process of a killed driver's
    attempt may take a moment to be stopped by Ray. After `timeout`, the run reports it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            RunLock(folder).acquire().release()
            return
        except LockHeld:
            if time.monotonic() > deadline:
                return
            time.sleep(1)


def run_trial(config, trials):
    """Tune's trainable: one attempt at the trial `config["trial"]`, resuming the run from its
    latest checkpoint if an earlier attempt left one. Reports every round to Tune, after
    writing status.yml: a trial that the scheduler stops leaves its report with SystemExit,
    and the driver records it. Bad input and divergence are recorded as failed and return
    normally, so Tune does not retry them; anything else is recorded and raised, and Tune
    retries it."""
    import ray
    from easydict import EasyDict
    from ray import tune

    from zscrgan import experiment

    cfg = EasyDict(trials[config["trial"]])
    status = read_status(cfg)
    status.update(status="running", error=None, attempts=status["attempts"] + 1, node=socket.gethostname())
    write_status(cfg, status)
    start, before = time.monotonic(), status["seconds"]
    key, node_id = f"prec_at_{cfg.top_k}", ray.get_runtime_context().get_node_id()

    def on_round(row, best, is_best):
        record(rounds_done=row["round"])
        score = row.get(f"val_{key}", row[key])  # with validation classes, never the test score
        tune.report({**row, "score": score, "best": best, "node_id": node_id})

    def record(**outcome):
        status.update(outcome, seconds=before + time.monotonic() - start)
        write_status(cfg, status)

    try:
        wait_for_lock(log_dir(cfg))
        result = experiment.run(cfg, resume=True, on_round=on_round, progress=False)
    except (ConfigError, experiment.DatasetError, experiment.UsageError,
            experiment.CheckpointMismatch, experiment.Diverged) as e:
        record(status="failed", error=one_line(e))
    except Exception as e:
        record(status="failed", error=one_line(f"{type(e).__name__}: {e}"))
        raise
    else:
        record(status="finished", rounds_done=result["rounds"])


# --------------------------------------------------------------------------- the driver

def parse_args(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise SweepError(f"{message} (see --help)")

    parser = Parser(prog="python -m zscrgan.sweep", description="Run a sweep of ZSCRGAN runs on Ray Tune.")
    parser.add_argument("sweep", nargs="?", help="the sweep file (optional with --resume: DIR/sweep.yml is used)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the sweep's folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep in DIR: run its pending and interrupted trials")
    parser.add_argument("--address", help="an existing Ray cluster: 'auto' or HOST:PORT (default: start Ray here)")
    parser.add_argument("--max_concurrent", type=int, metavar="N",
                        help="at most N trials at once (default: as many as the resources allow)")
    parser.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo",
                        help="asha: stop trials whose per-round score trails early")
    args = parser.parse_args(argv)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise SweepError(f"--max_concurrent must be >= 1, got {args.max_concurrent}")
    if not args.resume and not args.sweep:
        raise SweepError("a sweep file is needed (or --resume to continue the sweep in --out)")
    return args


def prepare(args):
    """(absolute DIR, sweep, trials) after every check; nothing is written."""
    out = os.path.abspath(args.out)
    saved = os.path.join(out, "sweep.yml")
    if args.resume:
        if not os.path.isfile(saved):
            raise SweepError(f"--resume: {args.out} holds no sweep (no sweep.yml)")
        sweep = load_sweep(saved)
        if args.sweep and load_sweep(args.sweep) != sweep:
            raise SweepError(f"{args.sweep} differs from the sweep in {saved}: resume without the "
                             "sweep file, or start a new sweep with another --out")
        source = saved
    else:
        if os.path.exists(saved):
            raise SweepError(f"{args.out} already holds a sweep: continue it with --resume, "
                             "or choose another --out")
        if os.path.exists(out) and (not os.path.isdir(out) or set(os.listdir(out)) - {LOCK_FILE}):
            raise SweepError(f"--out {args.out} exists and is not an empty folder")
        sweep = load_sweep(args.sweep)
        source = args.sweep
    return out, sweep, trial_configs(sweep, source, out)


def start_ray(address, resources):
    """Start (or connect to) Ray with this package importable on every worker."""
    import ray
    runtime_env = {"py_modules": [PACKAGE_DIR], "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3"}}
    local = {} if address else {"include_dashboard": False}
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False,
                 logging_level=logging.WARNING, **local)
    except ConnectionError as e:
        raise SweepError(f"--address {address}: {one_line(e)}")
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if not any(n.get("CPU", 0) >= resources["cpus"] and n.get("GPU", 0) >= resources["gpus"] for n in nodes):
        ray.shutdown()
        have = ", ".join(f"{n.get('CPU', 0):g} CPUs and {n.get('GPU', 0):g} GPUs" for n in nodes)
        raise SweepError(f"resources: no Ray node has {resources['cpus']} CPUs and {resources['gpus']} GPUs "
                         f"(the nodes have {have})")


def error_line(text):
    """The first line of the last failure in the error file Tune keeps for a trial."""
    lines = [l for l in text.splitlines() if l.strip()]
    starts = [i for i, l in enumerate(lines) if l.startswith("Failure # ")]
    i = starts[-1] + 1 if starts else 0
    return one_line(lines[i]) if i < len(lines) else "its process died"


def describe(key, cfg, status):
    line = f"[{status['status']}] {key}: {status['rounds_done']} rounds, {status['seconds']:.0f} s"
    best = best_in_history(cfg, log_dir(cfg))["test_at_best"]
    if best is not None:
        line += f", best Prec@{cfg['top_k']} {best:.4f}"
    return line + (f": {status['error']}" if status["error"] else "")


def tune_trials(configs, todo, out, resources, max_concurrent, scheduler_name):
    """Run the trials `todo` on Tune; each records its own outcome in status.yml."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    class Recorder(tune.Callback):
        """Records in the driver what a trial's own process cannot: a stop by the scheduler,
        and a process that died more often than it may be retried."""

        def on_trial_start(self, iteration, trials, trial, **info):
            print(f"[started] {trial.config['trial']}", flush=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            print(f"[retrying] {trial.config['trial']}: its process died; resuming from its latest checkpoint",
                  flush=True)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            fault_point("sweep:result")

        def on_trial_complete(self, iteration, trials, trial, **info):
            key = trial.config["trial"]
            cfg, status = configs[key], read_status(configs[key])
            if status["status"] == "running":  # stopped by the scheduler after a round
                done = rounds_in_history(cfg)
                status.update(status="finished" if done >= cfg["epochs"] else "stopped", rounds_done=done)
                write_status(cfg, status)
            print(describe(key, cfg, status), flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            key = trial.config["trial"]
            cfg, status = configs[key], read_status(configs[key])
            if status["status"] != "failed" or not status["error"]:
                status.update(status="failed", error=error_line(str(trial.get_error() or "")))
            status["error"] += f" (after {status['attempts']} attempts)"
            write_status(cfg, status)
            print(describe(key, cfg, status), flush=True)

    epochs = max(configs[k]["epochs"] for k in todo) or 1
    scheduler = (ASHAScheduler(time_attr="round", metric="score", mode="max", max_t=epochs,
                               grace_period=max(1, epochs // 10), reduction_factor=3)
                 if scheduler_name == "asha" else FIFOScheduler())
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials={k: configs[k] for k in todo}),
                                    {"cpu": resources["cpus"], "gpu": resources["gpus"]})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(todo)},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, scheduler=scheduler,
                                    trial_name_creator=lambda t: t.config["trial"],
                                    trial_dirname_creator=lambda t: t.config["trial"].replace("/", "_")),
        run_config=tune.RunConfig(storage_path=os.path.join(out, "ray"), name=time.strftime("tune-%Y%m%d-%H%M%S"),
                                  verbose=0, callbacks=[Recorder()],
                                  failure_config=tune.FailureConfig(max_failures=MAX_RETRIES)))
    tuner.fit()


def run_sweep(args):
    out, sweep, trials = prepare(args)
    os.makedirs(out, exist_ok=True)
    try:
        lock = RunLock(out).acquire()
    except LockHeld as e:
        raise SweepError(f"another sweep is using {args.out} ({e})")
    try:
        import ray
        start_ray(args.address, sweep["resources"])
        try:
            if not args.resume:
                write_yaml(os.path.join(out, "sweep.yml"), sweep, "sweep")
            keys = list(sweep["grid"])
            for cfg in trials.values():
                if not args.resume or read_status(cfg) is None:
                    os.makedirs(log_dir(cfg), exist_ok=True)
                    write_status(cfg, new_status(cfg, keys))
            todo = [k for k, cfg in trials.items() if read_status(cfg)["status"] in ("pending", "running")]
            print(f"sweep {args.out}: {len(trials)} trials, {len(todo)} to run", flush=True)
            if todo:
                tune_trials(trials, todo, out, sweep["resources"], args.max_concurrent, args.scheduler)
        finally:
            ray.shutdown()
        return summarize(args.out, out, trials)
    finally:
        lock.release()


def summarize(shown_out, out, trials):
    """Print the trials' outcomes and the report; returns the exit status."""
    statuses = {k: read_status(cfg) for k, cfg in trials.items()}
    for key, status in statuses.items():
        if status["status"] == "running":  # the driver was interrupted: the trial can be resumed
            status["status"] = "pending"
            write_status(trials[key], status)
    counts = {s: sum(st["status"] == s for st in statuses.values())
              for s in ("finished", "stopped", "failed", "pending")}
    print(f"sweep {shown_out}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    for key, status in statuses.items():
        if status["status"] == "failed":
            print(f"  failed {key}: {status['error']}")
    if counts["pending"]:
        print(f"  continue with: python -m zscrgan.sweep --out {shown_out} --resume")
    from zscrgan import report
    print(report.write_report(out))
    return EXIT_OK if counts["failed"] + counts["pending"] == 0 else EXIT_FAILED


def main(argv=None):
    """Entry point; returns the exit status (see the module docstring)."""
    try:
        return run_sweep(parse_args(argv))
    except SweepError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
