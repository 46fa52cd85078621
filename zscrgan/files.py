"""Files that a kill at any moment leaves whole, and the lock that keeps two writers apart.

Every file is written to `<name>.partial` and renamed into place (`atomic_write`); a folder
is filled in its staging folder `.<name>.staging` beside it and renamed into place
(`staging_folder`, `publish`). `remove_partials` deletes what a killed write left of either.
A folder's lock (`RunLock`, the file `run.lock`) keeps a second writer out and is dropped by
the kernel when its process dies, however it dies. `read_yaml` is the one YAML reader.

`fault_point` lets the tests kill a real process at a chosen moment: with
ZSCRGAN_FAULT="<point>,<n>,<SIGNAL>" the process sends itself SIGNAL (KILL, INT, TERM)
the n-th time it reaches <point> (in a sweep's worker: the n-th time in the trial it runs,
`restart_fault_counts`). Unset, it does nothing. Nothing here imports more than the
standard library and PyYAML.
"""
import collections
import fcntl
import os
import shutil
import signal
import socket
import sys
import time

import yaml

from zscrgan.errors import BadInput, UsageError

PARTIAL = ".partial"
STAGING = ".staging"
LOCK_FILE = "run.lock"

_fault_counts = collections.Counter()


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


# --------------------------------------------------------------------------- files


def atomic_write(path, data, kind):
    """Write bytes to `path` (a str or path-like) through `<path>.partial` and a rename; `kind`
    names the fault point (`write:<kind>`, half-way through the bytes)."""
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


def read_yaml(path, what="YAML file", error=BadInput):
    """The mapping in a YAML file, or None when the file is absent or empty.

    Raises `error` (a BadInput) naming the file, and the line and column of a syntax error.
    """
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            obj = yaml.safe_load(f)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path}: not valid YAML{where}: {e.problem or e.context}")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise error(f"{path}: unreadable {what} ({e})")
    if obj is not None and not isinstance(obj, dict):
        raise error(f"{path} is not a {what}: expected a mapping of key: value, got {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------- folders


def check_new_folder(path, flag="--out", ignore=(), way="give a new folder"):
    """Refuse (UsageError) a `path` that is a file, or a folder holding anything but `ignore`
    (names); `way` says what to do instead. A missing or empty folder passes."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a file: {way}")
    if os.path.isdir(path) and set(os.listdir(path)) - set(ignore):
        raise UsageError(f"{flag} {path} exists and is not empty: {way}")


def staging_folder(path):
    """A new empty folder `.<name>.staging` beside `path` (what a killed write left there removed),
    in which a write prepares what `publish` then renames to `path`."""
    parent, name = os.path.split(os.path.abspath(path))
    staging = os.path.join(parent, f".{name}{STAGING}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def publish(staging, path, replace=False):
    """Rename the folder `staging` to `path`, which must be missing or empty, or with `replace`
    may be a folder that is swapped out and deleted (at no moment is `path` half-written)."""
    if os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)
    if not os.path.exists(path):
        os.rename(staging, path)
        return
    if not replace:
        raise UsageError(f"{path} exists and is not empty")
    old = f"{staging}.old"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(path, old)
    try:
        os.rename(staging, path)
    except OSError:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_partials(folders):
    """Delete what killed writes left in these folders: `*.partial` files and staging folders."""
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.endswith(PARTIAL) and os.path.isfile(path):
                os.remove(path)
            elif name.endswith(STAGING) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- the lock


class LockHeld(Exception):
    """Another live process holds the folder's lock; args: (its owner's details,)."""


class RunLock:
    """An exclusive lock on a folder (flock on `run.lock`, which holds the owner's details).

    The kernel drops a flock when its process dies, so a crashed writer leaves at most a stale
    file, never a stuck lock. The file is removed on release; acquiring re-checks that the
    locked file is still the one at the path, so removal cannot let two writers in.
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
            os.close(fd)  # the file was removed by a process that just released it: retry
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
