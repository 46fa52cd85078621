"""`zscrgan sweep`: many ordinary runs (datasets x seeds x a grid of settings) at once on Ray Tune.

    python -m zscrgan sweep SWEEP.yml --out DIR [--address auto|HOST:PORT]
                            [--max_concurrent N] [--scheduler fifo|asha]
    python -m zscrgan sweep --out DIR --resume [--retry_failed]

SWEEP.yml and its trials: zscrgan.sweeps.plan. A trial's folder DIR/logs/<dataset>_logs/<trial>/
holds the run's usual files, status.yml (zscrgan.results.trials) and start.yml (where its start
went). Before Ray starts, every trial's config and every dataset folder is checked (the
loader's checks, as `train` makes them); bad input exits 2 with one line and nothing written.
Without --address a single-node Ray starts in this process; `--address auto` or HOST:PORT
runs the trials on an existing Ray cluster, whose nodes must see DIR and the datasets at the
same paths (relative paths are made absolute here). An address where no Ray answers is
refused at once.

A trial whose process dies is retried from its latest checkpoint (up to MAX_RETRIES times);
a trial with bad input or a diverging loss is recorded as failed and not retried. `--resume`
continues a sweep from DIR/sweep.yml: it runs the pending and running trials (and with
`--retry_failed` the failed ones), and leaves the others alone. `--scheduler asha` stops
trials whose per-round selection metric trails the others (Tune's ASHA); they are recorded as
stopped. When the trials end, the sweep's report is written (zscrgan.sweeps.report).

Exit status: 0 every trial finished or was stopped by ASHA, 1 some trial failed or did not
finish, 2 bad input (nothing started).
"""
import os

from zscrgan.errors import EXIT_FAILED, EXIT_OK, UsageError
from zscrgan.files import LOCK_FILE, LockHeld, RunLock, check_new_folder, write_yaml
from zscrgan.results.run import Run
from zscrgan.results.trials import STATUSES, Trial
from zscrgan.sweeps import report, tune
from zscrgan.sweeps.plan import SweepError, check_datasets, load_sweep, trial_configs
from zscrgan.toolkit.arguments import positive

SWEEP_FILE = "sweep.yml"


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
    saved = os.path.join(out, SWEEP_FILE)
    if args.resume:
        if not os.path.isfile(saved):
            raise SweepError(f"--resume: {args.out} holds no sweep (no {SWEEP_FILE})")
        sweep = load_sweep(saved)
        if args.sweep and load_sweep(args.sweep) != sweep:
            raise SweepError(f"{args.sweep} differs from the sweep in {saved}: resume without the "
                             "sweep file, or start a new sweep with another --out")
        source = saved
    else:
        if os.path.exists(saved):
            raise SweepError(f"{args.out} already holds a sweep: continue it with --resume, "
                             "or choose another --out")
        check_new_folder(args.out, ignore=(LOCK_FILE, tune.TUNE_LOG), way="choose another --out")
        sweep = load_sweep(args.sweep)
        source = args.sweep
    trials = trial_configs(sweep, source, out)
    check_datasets(trials, source)
    return out, sweep, trials


def to_run(trials, args):
    """Keys of the trials this command runs: every one of a new sweep; with --resume the
    pending and running ones (and the failed ones with --retry_failed)."""
    wanted = ("pending", "running") + ("failed",) * args.retry_failed

    def status(cfg):
        trial = Trial.read(Run.of(cfg).logs)
        return trial["status"] if trial else "pending"

    return [k for k, cfg in trials.items() if not args.resume or status(cfg) in wanted]


def write_statuses(out, sweep, trials, todo, args):
    """Write sweep.yml, a pending status.yml for each new trial, and set failed trials in
    `todo` back to pending (--retry_failed)."""
    if not args.resume:
        write_yaml(os.path.join(out, SWEEP_FILE), sweep, "sweep")
    for key in todo:
        folder = Run.of(trials[key]).logs
        trial = Trial.read(folder)
        if trial is None:
            Trial.create(folder, trials[key], list(sweep["grid"]))
        elif trial["status"] == "failed":
            trial.requeue()


def run_sweep(args):
    """Check everything, then run the trials; returns the exit status."""
    out, sweep, trials = prepare(args)
    if args.address:
        tune.check_address(args.address)
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
            with tune.ray_output_to(os.path.join(out, tune.TUNE_LOG)):
                tune.start_ray(args.address, sweep["resources"])
                try:
                    write_statuses(out, sweep, trials, todo, args)
                    tune.tune_trials(trials, todo, out, sweep["resources"], args.max_concurrent, args.scheduler)
                finally:
                    ray.shutdown()
        return summarize(args.out, out, trials)
    finally:
        lock.release()


def summarize(shown_out, out, trials):
    """Print the trials' outcomes and the report; returns the exit status."""
    statuses = {k: Trial.read(Run.of(cfg).logs) for k, cfg in trials.items()}
    for trial in statuses.values():
        if trial["status"] == "running":  # the driver was interrupted: the trial can be resumed
            trial.requeue()
    counts = {s: sum(t["status"] == s for t in statuses.values()) for s in STATUSES}
    print(f"sweep {shown_out}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    for key, trial in statuses.items():
        if trial["status"] == "failed":
            print(f"  failed {key}: {trial['error']}")
    if counts["pending"] or counts["failed"]:
        print(f"  continue with: python -m zscrgan sweep --out {shown_out} --resume"
              + (" [--retry_failed]" if counts["failed"] else ""))
    print(report.write_report(out))
    return EXIT_OK if counts["failed"] + counts["pending"] == 0 else EXIT_FAILED


def main(args):
    """sweep: see the module docstring; returns the exit status. Bad input raises BadInput."""
    return run_sweep(args)
