"""A run's files: the one place that knows where a run keeps what, and how to read it back.

Every fact about a run lives here: its folders (from a resolved config), its history (one
writer, one typed reader), the selection rule (which round is best, docs/algorithm.md §11.2),
the dump of a round, the status vocabulary and label of a sweep's trial, the folder lock.
The trainer writes through it; sweep, report, inspect, baselines, export and retrieve read
through it. Nothing here imports TensorFlow, so input checks stay fast.

Every file goes to `<name>.partial` first and is renamed into place; the next run in the
folder removes the leftovers of a killed write. The folder's lock (`run.lock`) keeps a
second run out and is released by the kernel when its run dies, however it dies.

`fault_point` lets the tests kill a real run at a chosen moment: with
ZSCRGAN_FAULT="<point>,<n>,<SIGNAL>" the process sends itself SIGNAL (KILL, INT, TERM)
the n-th time it reaches <point> (in a sweep's worker: the n-th time in the trial it runs,
`restart_fault_counts`). Unset, it does nothing.
"""
import collections
import csv
import functools
import fcntl
import glob
import io
import math
import os
import pickle
import re
import shutil
import signal
import socket
import sys
import time

import numpy as np
import yaml

from zscrgan import config as config_lib
from zscrgan.data import Refused, restricted_load
from zscrgan.errors import BadInput

PARTIAL = ".partial"
LOCK_FILE = "run.lock"
# A run's logs folder: its resolved config, the sizes its checkpoints depend on, one row per round.
CONFIG_FILE, SHAPE_FILE, HISTORY_FILE = "config.yml", "model_shape.yml", "history.csv"

_fault_counts = collections.Counter()


class LockHeld(Exception):
    """Another live run holds the folder's lock."""


class ResultsError(BadInput):
    """A run file that cannot be read as what it should be; the message names it and why."""


def fault_point(name):
    """Testing hook; see the module docstring."""
    spec = os.environ.get("ZSCRGAN_FAULT")
    if not spec:
        return
    point, count, sig = spec.split(",")
    if point != name:
        return
    _fault_counts[name] += 1
    if _fault_counts[name] == int(count):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), getattr(signal, "SIG" + sig))


def restart_fault_counts():
    """Count from zero again: a sweep worker runs trial after trial, and each counts its own."""
    _fault_counts.clear()


def atomic_write(path, data, kind):
    """Write bytes to `path` (a str or path-like) through `<path>.partial` and a rename; `kind`
    names the fault point."""
    path = os.fspath(path)
    tmp = path + PARTIAL
    with open(tmp, "wb") as f:
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        fault_point(f"write:{kind}")
        f.write(data[half:])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_yaml(path, obj, kind):
    atomic_write(path, yaml.safe_dump(obj, sort_keys=False).encode(), kind)


def read_yaml(path, what="YAML file"):
    """The mapping in a YAML file, or None when the file is absent or empty.

    Raises ResultsError naming the file, and the line and column of a syntax error."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            obj = yaml.safe_load(f)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ResultsError(f"{path}: not valid YAML{where}: {e.problem or e.context}")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ResultsError(f"{path}: unreadable {what} ({e})")
    if obj is not None and not isinstance(obj, dict):
        raise ResultsError(f"{path} is not a {what}: expected a mapping, got {type(obj).__name__}")
    return obj


def remove_partials(folders):
    """Delete what killed writes left behind: `*.partial` files and `.staging` folders."""
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.endswith(PARTIAL) and os.path.isfile(path):
                os.remove(path)
            elif name == ".staging" and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- history

def _number(text):
    if text in (None, ""):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_history(path, missing_ok=True):
    """(columns, rows) of a run's history.csv, in file order.

    rows: {"round": int, column: float or None (empty cell)}; non-finite values stay floats.
    Rows without a readable round (a line still being written) are skipped. An absent file
    gives ([], []) with missing_ok, else ResultsError; so does a file that is not a history
    (it needs a `round` and a `prec_at_<K>` column).
    """
    if not os.path.isfile(path):
        if missing_ok:
            return [], []
        raise ResultsError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ResultsError(f"{path} is not a history CSV ({e})")
    if "round" not in columns or not prec_columns(columns):
        raise ResultsError(f"{path} is not a history CSV: it needs a 'round' and a 'prec_at_<K>' column, "
                           f"has {columns[:12]}")
    rows = []
    for rec in raw:
        try:
            row = {"round": int(rec["round"])}
        except (TypeError, ValueError):
            continue
        row.update((c, _number(rec.get(c))) for c in columns if c != "round")
        rows.append(row)
    return columns, rows


def prec_columns(columns):
    """The test `prec_at_<K>` columns of a history, in order."""
    return [c for c in columns if re.fullmatch(r"prec_at_\d+", c)]


class History:
    """A run's history.csv, one row per round, rewritten whole after each round.

    Rows of rounds after `last_round` (written by a killed run after its last checkpoint)
    are dropped. Formatted lines are kept, so a round formats one row, not all of them.
    """

    def __init__(self, path, last_round):
        self.path = path
        columns, old = read_history(path)
        self.rows = [row for row in old if row["round"] <= last_round]
        self.columns = columns if self.rows else []
        self.lines = [self._format(row) for row in self.rows]
        if len(self.rows) != len(old):
            self.write()

    def _format(self, row):
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n").writerow(row)
        return buf.getvalue()

    def append(self, row):
        self.rows.append(row)
        if not set(row) <= set(self.columns):  # new columns (eval_ks changed on resume)
            self.columns += [k for k in row if k not in self.columns]
            self.lines = [self._format(r) for r in self.rows[:-1]]
        self.lines.append(self._format(row))
        self.write()

    def write(self):
        if not self.rows:
            if os.path.exists(self.path):
                os.remove(self.path)
            return
        header = ",".join(self.columns) + "\n"
        atomic_write(self.path, (header + "".join(self.lines)).encode(), "history")


# --------------------------------------------------------------------------- the selection rule

def score_key(select, top_k):
    """The history column that picks the best round: `prec_at_K` or `val_prec_at_K`."""
    return ("val_" if select == "val" else "") + f"prec_at_{top_k}"


def metric_name(select, top_k):
    """How the console names the selection metric."""
    return ("val " if select == "val" else "") + f"Prec@{top_k}"


def _score(row, key):
    value = row.get(key)
    if isinstance(value, str):
        value = _number(value)
    return value if value is not None and math.isfinite(value) else None


def round_row(rows, round_):
    """The history row of round `round_`, or None."""
    return next((row for row in rows if row["round"] == round_), None)


def best_row(rows, key):
    """The row with the highest `key`, the earliest on ties; rows without a finite value are
    skipped (docs/algorithm.md §11.2). rows: history rows; returns one of them, or None."""
    best = None
    for row in rows:
        value = _score(row, key)
        if value is not None and (best is None or value > _score(best, key)):
            best = row
    return best


# --------------------------------------------------------------------------- dumps

# Dumps hold only lists, dicts and numbers. The reference (Python 2) pickled numpy int64
# class ids, which arrive as numpy scalars; nothing else is admitted.
_DUMP_GLOBALS = frozenset({
    ("__builtin__", "long"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
})


def dump_path(folder, score):
    """`<folder>/acc<str(score)>.pkl`, as the reference names a dump (docs/algorithm.md §7)."""
    return os.path.join(folder, f"acc{score}.pkl")


def write_dump(folder, score, records):
    """Write a dump (a list of {query class: [K retrieved classes]}) named by its score."""
    os.makedirs(folder, exist_ok=True)
    path = dump_path(folder, score)
    atomic_write(path, pickle.dumps(records, protocol=2), "dump")
    return path


def name_score(path):
    """The score string in `acc<score>.pkl`, or None when the name carries none."""
    m = re.fullmatch(r"acc(.+)\.pkl", os.path.basename(path))
    if not m:
        return None
    try:
        float(m.group(1))
    except ValueError:
        return None
    return m.group(1)


def best_named_dump(folder):
    """The highest-scoring `acc<score>.pkl` in folder (the earliest name on ties), or None."""
    if not os.path.isdir(folder):
        return None
    named = sorted((-float(name_score(f)), f) for f in os.listdir(folder) if name_score(f) is not None)
    return os.path.join(folder, named[0][1]) if named else None


def _class_id(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(repr(value))
    return int(value)


def load_dump(path):
    """Load and check a dump: a list of {query class id: [K retrieved class ids]}, one K.

    Returns the records with plain int ids. Raises ResultsError.
    """
    if not os.path.isfile(path):
        raise ResultsError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            obj = restricted_load(f, _DUMP_GLOBALS)
    except Refused as e:
        raise ResultsError(f"{path} is not a retrieval dump: {e} (dumps hold only lists, dicts and numbers)")
    except Exception as e:  # truncated or corrupt files raise many kinds of errors
        raise ResultsError(f"{path} is not a readable pickle ({type(e).__name__}: {e})")
    if not isinstance(obj, list) or not obj:
        raise ResultsError(f"{path} is not a retrieval dump: expected a non-empty list of "
                           f"{{query class: [retrieved classes]}}, got {type(obj).__name__}")
    records, k = [], None
    for i, rec in enumerate(obj):
        try:
            if not isinstance(rec, dict) or len(rec) != 1:
                raise TypeError("not a one-key dict")
            (query, retrieved), = rec.items()
            if not isinstance(retrieved, (list, tuple)):
                raise TypeError("retrieved classes are not a list")
            query, retrieved = _class_id(query), [_class_id(r) for r in retrieved]
        except TypeError as e:
            raise ResultsError(f"{path} is not a retrieval dump: record {i} is not "
                               f"{{query class id: [retrieved class ids]}} ({e})")
        if not retrieved or (k is not None and len(retrieved) != k):
            raise ResultsError(f"{path}: record {i} retrieves {len(retrieved)} images, expected {k or 'at least 1'}")
        k = len(retrieved)
        records.append({query: retrieved})
    return records


def dump_arrays(records):
    """(query labels (Q,), retrieved labels (Q, K)) of a dump's records."""
    query = np.array([next(iter(r)) for r in records], np.int64)
    retrieved = np.array([next(iter(r.values())) for r in records], np.int64)
    return query, retrieved


# --------------------------------------------------------------------------- run folders

def run_dirs(dataset, run_name=None, logs_dir=None, results_dir=None):
    """(logs folder, results folder) of a run; folders default to configs/default.yml's.

    Unnamed: the reference's `<logs_dir>/<dataset>_logs` and `<results_dir>/<dataset>_res`;
    named: a folder `<run_name>` inside each, so named runs never share a folder.
    """
    logs = os.path.join(logs_dir or default("logs_dir"), f"{dataset}_logs")
    results = os.path.join(results_dir or default("results_dir"), f"{dataset}_res")
    if run_name:
        return os.path.join(logs, run_name), os.path.join(results, run_name)
    return logs, results


@functools.lru_cache(maxsize=None)
def _defaults():
    return config_lib.defaults()


def default(key):
    """A key's value in configs/default.yml: the one source of every tool's defaults."""
    return _defaults()[key]


# The config keys a Run reads: with all of them given, configs/default.yml is not needed.
RUN_KEYS = frozenset({"dataset", "run_name", "datasets_dir", "logs_dir", "results_dir", "top_k", "select"})


class Run:
    """One run, read through its files: its config, folders, history, selected round and dumps.

    cfg: the run's config (its config.yml over configs/default.yml when it has one). The
    selection metric follows the run's own `select` and `top_k`.
    """

    def __init__(self, cfg, logs, results, saved=None):
        merged = {**(saved or {}), **cfg}
        if not RUN_KEYS <= merged.keys():  # a resolved config needs no defaults file (a Ray worker has none)
            merged = {**_defaults(), **merged}
        self.cfg, self.logs, self.results = merged, logs, results
        self.saved = saved  # the run's config.yml as written, None without one
        self._k_known = "top_k" in cfg or "top_k" in (saved or {})

    @classmethod
    def of(cls, cfg):
        """The run a resolved config (or any mapping with dataset, run_name, logs_dir,
        results_dir) describes; its config.yml, if written, is not read."""
        logs, results = run_dirs(cfg["dataset"], cfg.get("run_name"), cfg.get("logs_dir"), cfg.get("results_dir"))
        return cls(dict(cfg), logs, results)

    @classmethod
    def find(cls, dataset, run_name=None, logs_dir=None, results_dir=None):
        """The run a tool's --dataset, --run_name, --logs_dir and --results_dir name, with the
        settings its config.yml records (the folders given here win)."""
        logs, results = run_dirs(dataset, run_name, logs_dir, results_dir)
        saved = read_yaml(os.path.join(logs, CONFIG_FILE), "run config")
        return cls({"dataset": dataset, "run_name": run_name}, logs, results, saved)

    @classmethod
    def at(cls, logs):
        """The run whose logs folder is `logs` (its results folder from its config.yml, or None)."""
        saved = read_yaml(os.path.join(logs, CONFIG_FILE), "run config")
        if not saved or not saved.get("dataset"):
            return cls({}, logs, None, saved)
        results = run_dirs(saved["dataset"], saved.get("run_name"), None, saved.get("results_dir"))[1]
        return cls({}, logs, results, saved)

    def path(self, name):
        """A file of the run's logs folder (CONFIG_FILE, SHAPE_FILE, HISTORY_FILE, ...)."""
        return os.path.join(self.logs, name)

    @property
    def history_path(self):
        return self.path(HISTORY_FILE)

    @property
    def select(self):
        return self.cfg["select"]

    @functools.cached_property
    def top_k(self):
        """K of the run's Prec@K: its config's, or for a history without a config.yml, the K of
        its mAP@K column (logged for top_k only), else of its first Prec@K column."""
        if not self._k_known:
            columns = self.history()[0]
            for pattern in (r"map_at_(\d+)", r"prec_at_(\d+)"):
                found = [m for m in (re.fullmatch(pattern, c) for c in columns) if m]
                if found:
                    return int(found[0].group(1))
        return int(self.cfg["top_k"])

    @property
    def selection_key(self):
        return score_key(self.select, self.top_k)

    def history(self, missing_ok=True):
        """(columns, rows) of the run's history.csv (see read_history)."""
        return read_history(self.history_path, missing_ok)

    def selected(self, rows=None):
        """The selected round's history row (the best of the run's selection metric), or None."""
        return best_row(self.history()[1] if rows is None else rows, self.selection_key)

    def best_test(self, rows=None):
        """The row of the best test Prec@K (the reference's protocol), or None."""
        return best_row(self.history()[1] if rows is None else rows, f"prec_at_{self.top_k}")

    def scores(self, row):
        """{"best": the selection metric, "test_at_best": test Prec@K} of a row (Nones without one)."""
        if row is None:
            return {"best": None, "test_at_best": None}
        return {"best": row[self.selection_key], "test_at_best": row[f"prec_at_{self.top_k}"]}

    def dump(self, row):
        """Path of the dump a round wrote when it became the best (named by its test Prec@K)."""
        return dump_path(self.results, row[f"prec_at_{self.top_k}"])

    def selected_dump(self):
        """The dump of the selected round, or (a folder without a history, e.g. the reference's
        own dumps) its highest-named dump; None when there is none."""
        row = self.selected() if self.results else None
        if row is not None and os.path.isfile(self.dump(row)):
            return self.dump(row)
        return best_named_dump(self.results) if self.results else None

    def slot(self, which):
        """The run's `best` or `latest` checkpoint folder (a CheckpointSlot)."""
        from zscrgan.checkpointing import CheckpointSlot
        return CheckpointSlot(self.path(which))

    def checkpoint(self, which="best", required=False):
        """A checkpoint prefix: `best` or `latest` (None when the slot is empty, or with
        `required` a ResultsError), or a path: a prefix (.../best/ckpt-7) or a folder holding
        one. Raises ResultsError for a bad path."""
        from zscrgan.checkpointing import CheckpointSlot
        if which in ("best", "latest"):
            prefix = self.slot(which).current()
            if prefix is None and required:
                raise ResultsError(f"--checkpoint {which}: {self.path(which)} holds no checkpoint")
            return prefix
        if os.path.isdir(which):
            prefix = CheckpointSlot(which).current()
            if prefix is None:
                raise ResultsError(f"--checkpoint {which}: the folder holds no checkpoint")
            return prefix
        if not os.path.isfile(which + ".index"):
            raise ResultsError(f"--checkpoint {which}: no checkpoint there (expected {which}.index)")
        return which


# --------------------------------------------------------------------------- sweep trials

STATUS_FILE = "status.yml"
# A trial's status.yml `status`: pending (not started), running, finished, failed (bad input,
# divergence, or a crash after its retries), stopped (by ASHA).
STATUSES = ("pending", "running", "finished", "failed", "stopped")
# Where a trial's latest attempt spent its start (sweep.run_trial writes it; bench_sweep reads it).
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


def new_status(cfg, keys):
    """A pending trial's status.yml: the keys of the sweep's shared contract."""
    return {"dataset": cfg["dataset"], "seed": cfg["seed"], "grid": {k: cfg[k] for k in keys},
            "trial": cfg["run_name"], "status": "pending", "error": None, "rounds_done": 0,
            "seconds": 0.0, "attempts": 0, "node": None}


def read_status(folder):
    """A trial's status.yml in its logs folder, checked; None when there is none."""
    path = os.path.join(folder, STATUS_FILE)
    status = read_yaml(path, "trial status file")
    if status is None:
        return None
    problems = [f"no {key}" for key in ("dataset", "seed", "status") if key not in status]
    if "status" in status and status["status"] not in STATUSES:
        problems.append(f"status {status['status']!r} is none of {', '.join(STATUSES)}")
    if not isinstance(status.get("grid") or {}, dict):
        problems.append("its grid is not a mapping")
    if problems:
        raise ResultsError(f"{path} is not a trial status: {'; '.join(problems)}")
    return status


def write_status(folder, status):
    write_yaml(os.path.join(folder, STATUS_FILE), status, "status")


def read_start(folder):
    """A trial's start.yml in its logs folder (where its latest attempt's start went), or None."""
    return read_yaml(os.path.join(folder, START_FILE), "trial start file")


def write_start(folder, start):
    write_yaml(os.path.join(folder, START_FILE), start, "trial start")


def trial_folders(out):
    """The logs folders of every trial of the sweep in `out` (those holding a status.yml), sorted."""
    logs = sweep_dirs(out)[0]
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(logs, "*_logs", "*", STATUS_FILE)))

# --------------------------------------------------------------------------- model shape

def model_shape(cfg, dataset):
    """What a checkpoint's variables depend on: the config's sizes and the dataset's."""
    return {"embed_dim": cfg.embed_dim, "z_dim": cfg.z_dim, "gf_dim": cfg.gf_dim,
            "df_dim": cfg.df_dim, "batch_size": cfg.batch_size,
            "text_dim": int(dataset.text_dim), "image_dim": int(dataset.image_dim),
            "train_classes": len(dataset.train_ids)}


def shape_changes(saved, current):
    """['key: saved -> current', ...] for every key whose value differs."""
    return [f"{key} {saved[key]} -> {current[key]}" for key in current
            if key in saved and saved[key] != current[key]]


# --------------------------------------------------------------------------- lock

class RunLock:
    """An exclusive lock on a run folder (flock on `run.lock`, which holds the owner's details).

    The kernel drops a flock when its process dies, so a crashed run leaves at most a stale
    file, never a stuck lock. The file is removed on release; acquiring re-checks that the
    locked file is still the one at the path, so removal cannot let two runs in.
    """

    def __init__(self, folder):
        self.path = os.path.join(folder, LOCK_FILE)
        self.fd = None

    def acquire(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 1000).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise LockHeld(owner)
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the file was removed by a run that just released it: retry
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None
