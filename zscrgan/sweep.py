"""`zscrgan sweep`: many ordinary runs (datasets x seeds x a grid of settings) at once on Ray Tune.

    python -m zscrgan sweep SWEEP.yml --out DIR [--address auto|HOST:PORT]
                            [--max_concurrent N] [--scheduler fifo|asha]
    python -m zscrgan sweep --out DIR --resume [--retry_failed]

SWEEP.yml:

    datasets: [MFEAT]                  # dataset folder names (required)
    seeds: [0, 1, 2, 3, 4]             # (required)
    set: {epochs: 50}                  # overrides for every trial: keys of configs/default.yml
    grid: {CSEM_lr: [0.002, 0.001]}    # every combination of these values
    resources: {cpus: 1, gpus: 0}      # per trial (default 1 CPU, no GPU)

Each trial is an ordinary run of `loop.run` (configs/default.yml, then configs/<dataset>.yml,
then `set`, then the trial's grid values and seed) named `results.trial_label(seed, grid)`,
with `logs_dir` DIR/logs, `results_dir` DIR/results and `threads` = its CPUs. Its folder
DIR/logs/<dataset>_logs/<trial>/ holds the run's usual files, status.yml (one of
`results.STATUSES`; see `results.new_status`) and start.yml (where its start went).

A worker process runs trial after trial (Tune's reuse_actors), TensorFlow started once; a
trial whose graphs are its previous trial's (the same dataset and settings, another seed)
runs on that trial's traced kernels, every variable set to its own fresh values
(zscrgan/kernels.py): the same run, without tracing or compiling.

Before Ray starts, every trial's config and every dataset folder is checked (the loader's
checks, as `train` makes them); bad input exits 2 with one line and nothing written.
Without --address a single-node Ray starts in this process; `--address auto` or HOST:PORT
runs the trials on an existing Ray cluster, whose nodes must see DIR and the datasets at the
same paths (relative paths are made absolute here). An address where no Ray answers is
refused at once. The console shows one line per trial; Tune's tables and Ray's own messages
go to DIR/tune.log.

A trial whose process dies is retried from its latest checkpoint (up to MAX_RETRIES times);
a trial with bad input or a diverging loss is recorded as failed and not retried. `--resume`
continues a sweep from DIR/sweep.yml: it runs the pending and running trials (and with
`--retry_failed` the failed ones), and leaves the others alone. `--scheduler asha` stops
trials whose per-round selection metric (`results.score_key`) trails the others (Tune's
ASHA); they are recorded as stopped.

Exit status: 0 every trial finished or was stopped by ASHA, 1 some trial failed or did not
finish, 2 bad input (nothing started).
"""
import contextlib
import itertools
import logging
import os
import re
import socket
import statistics
import sys
import time

from zscrgan import config as config_lib
from zscrgan import results
from zscrgan.cli import positive
from zscrgan.config import ConfigError
from zscrgan.errors import EXIT_FAILED, EXIT_OK, BadInput, Diverged, UsageError, one_line
from zscrgan.results import (LOCK_FILE, LockHeld, Run, RunLock, fault_point, read_status, write_start,
                             write_status, write_yaml)

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SWEEP_KEYS = ("datasets", "seeds", "set", "grid", "resources")
# Keys each trial gets from the sweep itself; datasets_dir is a path, not a setting to grid over.
OWN_KEYS = ("dataset", "seed", "run_name", "logs_dir", "results_dir", "threads")
NOT_IN_GRID = OWN_KEYS + ("datasets_dir",)
MAX_RETRIES = 3          # restarts of a trial whose process died, each from its latest checkpoint
LOCK_WAIT_S = 60         # how long a trial waits for a previous attempt's process to let go of its folder
THREAD_WAIT_S = 60       # how long a worker given its next trial waits for the last one's thread to end
                         # (Tune's default, 2 s, then fails the new trial; a stopped trial takes a moment)
CONNECT_TIMEOUT_S = 5    # how long --address may take to answer before the sweep gives up
TUNE_LOG = "tune.log"
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class SweepError(BadInput):
    """Bad input: reported as one `error:` line, exit status 2, before anything starts."""


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


def _read_sweep_file(path):
    """The sweep file's mapping; YAML errors name the line and column (results.read_yaml)."""
    if not os.path.isfile(path):
        raise SweepError(f"{path}: no such sweep file")
    raw = results.read_yaml(path, "sweep file")
    if raw is None:
        raise SweepError(f"{path}: a sweep file is a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = [k for k in raw if k not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{path}: unknown key '{unknown[0]}' (a sweep file has {', '.join(SWEEP_KEYS)})")
    for key in ("datasets", "seeds"):
        if key not in raw:
            raise SweepError(f"{path}: '{key}' is missing")
    return raw


def _resources(resources):
    unknown = [k for k in resources if k not in ("cpus", "gpus")]
    if unknown:
        raise SweepError(f"resources: unknown key '{unknown[0]}' (known: cpus, gpus)")
    cpus, gpus = resources.get("cpus", 1), resources.get("gpus", 0)
    if not _count(cpus, 1):
        raise SweepError(f"resources: cpus must be an integer >= 1, got {cpus!r}")
    if not _count(gpus, 0):
        raise SweepError(f"resources: gpus must be an integer >= 0, got {gpus!r}")
    return {"cpus": cpus, "gpus": gpus}


def load_sweep(path):
    """The sweep file at `path`, checked and resolved: every section present, the resources'
    defaults filled in and `set: datasets_dir` made absolute (relative to the working
    directory). Raises SweepError (or results.ResultsError for a file that is not YAML)."""
    raw = _read_sweep_file(path)
    try:
        datasets = _unique_list(raw["datasets"], "datasets",
                                lambda d: isinstance(d, str) and _DATASET_NAME.match(d))
        seeds = _unique_list(raw["seeds"], "seeds", lambda s: _count(s, 0))
        settings = dict(_mapping(raw.get("set"), "set"))
        grid = _mapping(raw.get("grid"), "grid")
        for key in settings:
            if key in OWN_KEYS:
                raise SweepError(f"set: '{key}' is set by the sweep for each trial")
        for key, values in grid.items():
            if key in NOT_IN_GRID:
                raise SweepError(f"grid: '{key}' cannot be a grid key")
            if key in settings:
                raise SweepError(f"'{key}' is in both set and grid")
            _unique_list(values, f"grid: {key}", lambda v: True)
        resources = _resources(_mapping(raw.get("resources"), "resources"))
    except SweepError as e:
        raise SweepError(f"{path}: {e}")
    folder = settings.get("datasets_dir", results.default("datasets_dir"))
    if isinstance(folder, str):
        settings["datasets_dir"] = os.path.abspath(folder)
    return {"datasets": datasets, "seeds": seeds, "set": settings, "grid": grid, "resources": resources}


def trial_configs(sweep, source, out):
    """{"<dataset>/<trial label>": resolved config (a plain dict)} in the order the trials run.

    Layers: configs/default.yml, configs/<dataset>.yml, `set`, the trial's grid values, then
    what the sweep fixes (seed, run name, DIR's folders, threads). Raises SweepError.
    """
    keys = list(sweep["grid"])
    logs_dir, results_dir = results.sweep_dirs(out)
    trials = {}
    try:
        for dataset in sweep["datasets"]:
            base = config_lib.load_config(flags={"dataset": dataset})
            base = config_lib.merge(base, sweep["set"], f"{source}: set")
            for seed, values in itertools.product(sweep["seeds"], itertools.product(*sweep["grid"].values())):
                cfg = config_lib.merge(base, dict(zip(keys, values)), f"{source}: grid")
                grid = {k: cfg[k] for k in keys}  # as coerced: 1 and 1.0 of a float key are one value
                name = results.trial_label(seed, grid)
                cfg.update(seed=seed, run_name=name, logs_dir=logs_dir, results_dir=results_dir,
                           threads=sweep["resources"]["cpus"])
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


def check_datasets(trials, source):
    """Every trial's own checks before anything starts, as `loop.run` makes them: its dataset
    loaded (once per folder) and its validation classes resolved against it."""
    from easydict import EasyDict
    from zscrgan import loop
    loaded = {}
    for key, cfg in trials.items():
        cfg = EasyDict(cfg)
        folder = (cfg.datasets_dir, cfg.dataset)
        try:
            if folder not in loaded:
                loaded[folder] = loop.dataset_of(cfg)
        except BadInput as e:
            raise SweepError(f"{source}: dataset {cfg.dataset}: {e}")
        try:
            loop.checked_inputs(cfg, loaded[folder])  # its warnings: the trial's own console says them
        except BadInput as e:
            raise SweepError(f"{source}: trial {key}: {e}")


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


def process_age():
    """Seconds since this process was created (from /proc: Linux), or None."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


_trials_here = 0  # trials this worker process has started: Tune gives a process trial after trial


def process_start():
    """{pid, trial_in_process, process_s, tf_import_s}: this process's own start as the trial
    sees it (both 0 for a process an earlier trial started), TensorFlow imported meanwhile."""
    global _trials_here
    process_s = process_age() if not _trials_here else 0.0
    t0, imported = time.perf_counter(), "tensorflow" in sys.modules
    import tensorflow  # noqa: F401  (a run imports it anyway; here its seconds are counted apart)
    _trials_here += 1
    return {"pid": os.getpid(), "trial_in_process": _trials_here, "process_s": process_s,
            "tf_import_s": 0.0 if imported else time.perf_counter() - t0}


def start_record(process, startup, em):
    """start.yml: `process` (process_start), the run's `startup` (loop.run) and compile_s, the
    seconds of round 1's E- and M-step beyond tracing and a steady round (the median of this
    attempt's later rounds; None without them). em: this attempt's rounds' E+M seconds."""
    compile_s = em[0] - startup.get("trace_s", 0.0) - statistics.median(em[1:]) if len(em) > 1 else None
    return {**process, **startup, "compile_s": compile_s}


def run_trial(config, trials):
    """Tune's trainable: one attempt at the trial `config["trial"]`, resuming the run from its
    latest checkpoint if an earlier attempt left one, on the kernels this worker process traced
    for its previous trial when the graphs are the same (zscrgan/kernels.py). Reports every
    round to Tune, after writing status.yml, with `score` the run's selection metric (what ASHA
    compares): a trial that the scheduler stops leaves its report with SystemExit, and the
    driver records it. Bad input and divergence are recorded as failed and return normally, so
    Tune does not retry them; anything else is recorded and raised, and Tune retries it.
    Each round also writes where the attempt's start went to start.yml (`start_record`)."""
    process = process_start()
    results.restart_fault_counts()
    import ray
    from easydict import EasyDict
    from ray import tune

    from zscrgan import loop

    cfg = EasyDict(trials[config["trial"]])
    folder = Run.of(cfg).logs
    status = read_status(folder)
    status.update(status="running", error=None, attempts=status["attempts"] + 1, node=socket.gethostname())
    write_status(folder, status)
    start, before = time.monotonic(), status["seconds"]
    key, node_id = results.score_key(cfg.select, cfg.top_k), ray.get_runtime_context().get_node_id()

    startup, em = {}, []

    def on_round(row, best, is_best):
        em.append(row["e_step_s"] + row["m_step_s"])
        record(rounds_done=row["round"])
        write_start(folder, start_record(process, startup, em))
        tune.report({**row, "score": row[key], "best": best, "node_id": node_id})

    def record(**outcome):
        status.update(outcome, seconds=before + time.monotonic() - start)
        write_status(folder, status)

    try:
        wait_for_lock(folder)
        result = loop.run(cfg, resume=True, on_round=on_round, progress=False, reuse_kernels=True, startup=startup)
    except (BadInput, Diverged) as e:
        record(status="failed", error=one_line(e))
    except Exception as e:
        record(status="failed", error=one_line(f"{type(e).__name__}: {e}"))
        raise
    else:
        record(status="finished", rounds_done=result["rounds"])


# --------------------------------------------------------------------------- the driver

def add_arguments(parser):
    """sweep's flags."""
    parser.description = "Run a sweep of ZSCRGAN runs (datasets x seeds x a grid) on Ray Tune."
    parser.add_argument("sweep", nargs="?", help="the sweep file (optional with --resume: DIR/sweep.yml is used)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the sweep's folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep in DIR: run its pending and interrupted trials")
    parser.add_argument("--retry_failed", action="store_true",
                        help="with --resume: run the failed trials again too, from their latest checkpoints")
    parser.add_argument("--address", help="an existing Ray cluster: 'auto' or HOST:PORT (default: start Ray here)")
    parser.add_argument("--max_concurrent", type=positive(int), metavar="N",
                        help="at most N trials at once (default: as many as the resources allow)")
    parser.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo",
                        help="asha: stop trials whose per-round score trails early")


def prepare(args):
    """(absolute DIR, sweep, trials) after every check, datasets loaded; nothing is written."""
    if not args.resume and not args.sweep:
        raise UsageError("a sweep file is needed (or --resume to continue the sweep in --out)")
    if args.retry_failed and not args.resume:
        raise UsageError("--retry_failed needs --resume")
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
        if os.path.exists(out) and (not os.path.isdir(out) or set(os.listdir(out)) - {LOCK_FILE, TUNE_LOG}):
            raise SweepError(f"--out {args.out} exists and is not an empty folder")
        sweep = load_sweep(args.sweep)
        source = args.sweep
    trials = trial_configs(sweep, source, out)
    check_datasets(trials, source)
    return out, sweep, trials


def cluster_address(address):
    """(host, port) of the Ray cluster `--address` names. 'auto' is found as ray.init finds
    it: $RAY_ADDRESS, else the address `ray start` left on this machine."""
    given = address
    if address == "auto":
        from ray._private.utils import read_ray_address
        address = os.environ.get("RAY_ADDRESS") or read_ray_address()
        if not address:
            raise SweepError("--address auto: no Ray cluster was started on this machine "
                             "(start one with `ray start --head`, or give HOST:PORT)")
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {given}: expected 'auto' or HOST:PORT")
    return host, int(port)


def check_address(address):
    """Refuse at once an address where no Ray answers (ray.init would retry for minutes)."""
    host, port = cluster_address(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise SweepError(f"--address {address}: no Ray answers at {host}:{port} ({e.strerror or e}); "
                         "is the cluster up (`ray status`)?")


def start_ray(address, resources):
    """Start (or connect to) Ray with this package on every worker (a trial's config comes
    resolved from the driver, so workers need no configs/)."""
    import ray
    runtime_env = {"py_modules": [PACKAGE_DIR],
                   "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3", "TUNE_FUNCTION_THREAD_TIMEOUT_S": str(THREAD_WAIT_S)}}
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


_consoles = []  # where say() writes while ray_output_to sends sys.stdout to the log


def say(text):
    """Print one of the sweep's own lines on the console."""
    print(text, file=_consoles[-1] if _consoles else sys.stdout, flush=True)


@contextlib.contextmanager
def ray_output_to(path):
    """Send what Ray and Tune print in this process to the file `path`: Tune's status tables,
    the raylet's banners about dead workers (printed to sys.stdout) and the `ray` loggers;
    say() still prints on the console."""
    ray_logger = logging.getLogger("ray")
    with open(path, "a", buffering=1) as log:
        saved, ray_logger.handlers = ray_logger.handlers, [logging.StreamHandler(log)]
        _consoles.append(sys.stdout)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            _consoles.pop()
            ray_logger.handlers = saved


def error_line(text):
    """The first line of the last failure in the error file Tune keeps for a trial."""
    lines = [l for l in text.splitlines() if l.strip()]
    starts = [i for i, l in enumerate(lines) if l.startswith("Failure # ")]
    i = starts[-1] + 1 if starts else 0
    return one_line(lines[i]) if i < len(lines) else "its process died"


def describe(key, cfg, status):
    """A trial's console line: its status, rounds, time and the scores of its selected round."""
    line = f"[{status['status']}] {key}: {status['rounds_done']} rounds, {status['seconds']:.0f} s"
    run = Run.of(cfg)
    scores = run.scores(run.selected())
    if scores["best"] is not None:
        line += f", best {results.metric_name(run.select, run.top_k)} {scores['best']:.4f}"
        if run.select == "val":
            line += f" (test Prec@{run.top_k} {scores['test_at_best']:.4f})"
    return line + (f": {status['error']}" if status["error"] else "")


def recorder(configs):
    """A Tune callback that prints the sweep's lines and records in the driver what a trial's
    own process cannot: a stop by the scheduler, and a process that died more often than it
    may be retried."""
    from ray import tune

    class Recorder(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            say(f"[started] {trial.config['trial']}")

        def on_trial_recover(self, iteration, trials, trial, **info):
            say(f"[retrying] {trial.config['trial']}: its process died; resuming from its latest checkpoint")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            fault_point("sweep:result")

        def on_trial_complete(self, iteration, trials, trial, **info):
            key = trial.config["trial"]
            run = Run.of(configs[key])
            status = read_status(run.logs)
            if status["status"] == "running":  # stopped by the scheduler after a round
                done = len(run.history()[1])
                status.update(status="finished" if done >= run.cfg["epochs"] else "stopped", rounds_done=done)
                write_status(run.logs, status)
            say(describe(key, configs[key], status))

        def on_trial_error(self, iteration, trials, trial, **info):
            key = trial.config["trial"]
            folder = Run.of(configs[key]).logs
            status = read_status(folder)
            if status["status"] != "failed" or not status["error"]:
                status.update(status="failed", error=error_line(str(trial.get_error() or "")))
            status["error"] += f" (after {status['attempts']} attempts)"
            write_status(folder, status)
            say(describe(key, configs[key], status))

    return Recorder()


def tune_trials(configs, todo, out, resources, max_concurrent, scheduler_name):
    """Run the trials `todo` on Tune; each records its own outcome in status.yml."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    epochs = max(configs[k]["epochs"] for k in todo) or 1
    scheduler = (ASHAScheduler(time_attr="round", metric="score", mode="max", max_t=epochs,
                               grace_period=max(1, epochs // 10), reduction_factor=3)
                 if scheduler_name == "asha" else FIFOScheduler())
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials={k: configs[k] for k in todo}),
                                    {"cpu": resources["cpus"], "gpu": resources["gpus"]})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(todo)},
        # reuse_actors: a worker process (and its TensorFlow, and kernels.py's kept kernels)
        # runs the next trial; every trial of a sweep asks for the same CPUs, so the same threads.
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, scheduler=scheduler, reuse_actors=True,
                                    trial_name_creator=lambda t: t.config["trial"],
                                    trial_dirname_creator=lambda t: t.config["trial"].replace("/", "_")),
        run_config=tune.RunConfig(storage_path=os.path.join(out, "ray"), name=time.strftime("tune-%Y%m%d-%H%M%S"),
                                  verbose=1, callbacks=[recorder(configs)],
                                  failure_config=tune.FailureConfig(max_failures=MAX_RETRIES)))
    tuner.fit()


def to_run(trials, args):
    """Keys of the trials this command runs: every one of a new sweep; with --resume the
    pending and running ones (and the failed ones with --retry_failed)."""
    wanted = ("pending", "running") + ("failed",) * args.retry_failed
    return [k for k, cfg in trials.items()
            if not args.resume or (read_status(Run.of(cfg).logs) or {"status": "pending"})["status"] in wanted]


def write_statuses(out, sweep, trials, todo, args):
    """Write sweep.yml, a pending status.yml for each new trial, and set failed trials in
    `todo` back to pending (--retry_failed)."""
    if not args.resume:
        write_yaml(os.path.join(out, "sweep.yml"), sweep, "sweep")
    for key in todo:
        folder = Run.of(trials[key]).logs
        status = read_status(folder)
        if status is None:
            os.makedirs(folder, exist_ok=True)
            write_status(folder, results.new_status(trials[key], list(sweep["grid"])))
        elif status["status"] == "failed":
            status.update(status="pending", error=None)
            write_status(folder, status)


def run_sweep(args):
    """Check everything, then run the trials; returns the exit status."""
    out, sweep, trials = prepare(args)
    if args.address:
        check_address(args.address)
    os.makedirs(out, exist_ok=True)
    try:
        lock = RunLock(out).acquire()
    except LockHeld as e:
        raise UsageError(f"another sweep is using {args.out} ({e})")
    try:
        todo = to_run(trials, args)
        print(f"sweep {args.out}: {len(trials)} trials, {len(todo)} to run", flush=True)
        if todo:
            import ray
            with ray_output_to(os.path.join(out, TUNE_LOG)):
                start_ray(args.address, sweep["resources"])
                try:
                    write_statuses(out, sweep, trials, todo, args)
                    tune_trials(trials, todo, out, sweep["resources"], args.max_concurrent, args.scheduler)
                finally:
                    ray.shutdown()
        return summarize(args.out, out, trials)
    finally:
        lock.release()


def summarize(shown_out, out, trials):
    """Print the trials' outcomes and the report; returns the exit status."""
    statuses = {k: read_status(Run.of(cfg).logs) for k, cfg in trials.items()}
    for key, status in statuses.items():
        if status["status"] == "running":  # the driver was interrupted: the trial can be resumed
            status["status"] = "pending"
            write_status(Run.of(trials[key]).logs, status)
    counts = {s: sum(st["status"] == s for st in statuses.values()) for s in results.STATUSES}
    print(f"sweep {shown_out}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    for key, status in statuses.items():
        if status["status"] == "failed":
            print(f"  failed {key}: {status['error']}")
    if counts["pending"] or counts["failed"]:
        print(f"  continue with: python -m zscrgan sweep --out {shown_out} --resume"
              + (" [--retry_failed]" if counts["failed"] else ""))
    from zscrgan import report
    print(report.write_report(out))
    return EXIT_OK if counts["failed"] + counts["pending"] == 0 else EXIT_FAILED


def main(args):
    """sweep: see the module docstring; returns the exit status. Bad input raises BadInput."""
    return run_sweep(args)


if __name__ == "__main__":  # the command of earlier versions
    from zscrgan.cli import forward
    forward("sweep")
