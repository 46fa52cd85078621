"""A run folder's files, written so that a kill at any moment leaves each one complete.

Every file goes to `<name>.partial` first and is renamed into place; the next run in the
folder removes the leftovers of a killed write. The folder's lock (`run.lock`) keeps a
second run out and is released by the kernel when its run dies, however it dies.

`fault_point` lets the tests kill a real run at a chosen moment: with
ZSCRGAN_FAULT="<point>,<n>,<SIGNAL>" the process sends itself SIGNAL (KILL, INT, TERM)
the n-th time it reaches <point>. Unset, it does nothing.

Nothing here imports TensorFlow, so input checks stay fast.
"""
import collections
import csv
import fcntl
import io
import os
import shutil
import signal
import socket
import sys
import time

import yaml

PARTIAL = ".partial"
LOCK_FILE = "run.lock"

_fault_counts = collections.Counter()


class LockHeld(Exception):
    """Another live run holds the folder's lock."""


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


def atomic_write(path, data, kind):
    """Write bytes to `path` through `<path>.partial` and a rename; `kind` names the fault point."""
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


def read_yaml(path):
    """The mapping in a YAML file written by `write_yaml`, or None when the file is absent."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return yaml.safe_load(f)


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

def read_history(path):
    """history.csv rows as {column: text}, in file order; [] when there is no file."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class History:
    """A run's history.csv, one row per round, rewritten whole after each round.

    Rows of rounds after `last_round` (written by a killed run after its last checkpoint)
    are dropped. Formatted lines are kept, so a round formats one row, not all of them.
    """

    def __init__(self, path, last_round):
        self.path = path
        old = read_history(path)
        self.rows = [row for row in old if int(row["round"]) <= last_round]
        self.columns = list(dict.fromkeys(k for row in self.rows for k in row))
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


# --------------------------------------------------------------------------- run folders

def run_dirs(dataset, run_name=None, logs_dir="ckt_logs", results_dir="retrieved_res"):
    """(logs folder, results folder) of a run.

    Unnamed: the reference's `<logs_dir>/<dataset>_logs` and `<results_dir>/<dataset>_res`;
    named: a folder `<run_name>` inside each, so named runs never share a folder.
    """
    logs = os.path.join(logs_dir, f"{dataset}_logs")
    results = os.path.join(results_dir, f"{dataset}_res")
    if run_name:
        return os.path.join(logs, run_name), os.path.join(results, run_name)
    return logs, results


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
