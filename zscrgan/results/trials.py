"""A sweep's trials on disk: their names, their folders in the sweep's folder, and each trial's
status.yml (where it stands) and start.yml (where its latest attempt's start went).

A trial is an ordinary named run (results.run) with `logs_dir` DIR/logs and `results_dir`
DIR/results; its status.yml sits in its logs folder. `Trial` is the one place that changes a
status: pending -> running (an attempt) -> finished, stopped (by the scheduler) or failed,
and back to pending (an interrupted sweep, or --retry_failed).
"""
import glob
import os

from zscrgan.errors import ResultsError
from zscrgan.files import read_yaml, write_yaml

STATUS_FILE = "status.yml"
# A trial's status.yml `status`: pending (not started), running, finished, failed (bad input,
# divergence, or a crash after its retries), stopped (by ASHA).
STATUSES = ("pending", "running", "finished", "failed", "stopped")
START_FILE = "start.yml"


def sweep_dirs(out):
    """(logs_dir, results_dir) that a sweep in folder `out` gives its trials."""
    return os.path.join(out, "logs"), os.path.join(out, "results")


def value_text(value):
    """A grid value as a trial's name writes it: lists joined by '+'."""
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def setting_label(grid):
    """`<key>=<value>` for each grid key, in the sweep file's order, joined by '_'."""
    return "_".join(f"{k}={value_text(v)}" for k, v in grid.items())


def trial_label(seed, grid):
    """A trial's run name: `seed<S>` then `_<key>=<value>` for each grid key."""
    return "_".join([f"seed{seed}"] + [setting_label(grid)] * bool(grid))


def trial_folders(out):
    """The logs folders of every trial of the sweep in `out` (those holding a status.yml), sorted."""
    logs = sweep_dirs(out)[0]
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(logs, "*_logs", "*", STATUS_FILE)))


def read_start(folder):
    """A trial's start.yml in its logs folder (where its latest attempt's start went), or None."""
    return read_yaml(os.path.join(folder, START_FILE), "trial start file", ResultsError)


def write_start(folder, start):
    write_yaml(os.path.join(folder, START_FILE), start, "trial start")


class Trial:
    """A trial's status.yml: `dataset`, `seed`, `grid`, `trial` (its name), `status` (one of
    STATUSES), `error` (one line or None), `rounds_done`, `seconds` (over all attempts),
    `attempts` and `node` (the host of the latest attempt). Every change is written at once."""

    def __init__(self, folder, status):
        self.folder, self.status = folder, status

    @classmethod
    def read(cls, folder):
        """The trial whose logs folder is `folder`, its status checked; None when it has none."""
        path = os.path.join(folder, STATUS_FILE)
        status = read_yaml(path, "trial status file", ResultsError)
        if status is None:
            return None
        problems = [f"no {key}" for key in ("dataset", "seed", "status") if key not in status]
        if "status" in status and status["status"] not in STATUSES:
            problems.append(f"status {status['status']!r} is none of {', '.join(STATUSES)}")
        if not isinstance(status.get("grid") or {}, dict):
            problems.append("its grid is not a mapping")
        if problems:
            raise ResultsError(f"{path} is not a trial status: {'; '.join(problems)}")
        return cls(folder, status)

    @classmethod
    def create(cls, folder, cfg, keys):
        """A new pending trial of the run config `cfg`, `keys` its grid keys."""
        os.makedirs(folder, exist_ok=True)
        trial = cls(folder, {"dataset": cfg["dataset"], "seed": cfg["seed"], "grid": {k: cfg[k] for k in keys},
                             "trial": cfg["run_name"], "status": "pending", "error": None, "rounds_done": 0,
                             "seconds": 0.0, "attempts": 0, "node": None})
        trial.set()
        return trial

    def __getitem__(self, key):
        return self.status[key]

    def set(self, **changes):
        self.status.update(changes)
        write_yaml(os.path.join(self.folder, STATUS_FILE), self.status, "status")

    def start_attempt(self, node):
        """An attempt begins on host `node`."""
        self.set(status="running", error=None, attempts=self.status["attempts"] + 1, node=node)

    def end_by_scheduler(self, rounds_done, epochs):
        """The scheduler ended a running trial after `rounds_done` rounds: finished if that was all."""
        self.set(status="finished" if rounds_done >= epochs else "stopped", rounds_done=rounds_done)

    def fail(self, error, **counts):
        self.set(status="failed", error=error, **counts)

    def requeue(self):
        """Pending again: a running trial whose sweep was interrupted, or a failed one to retry."""
        self.set(status="pending", error=None)
