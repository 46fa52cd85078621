"""A run's folders and what they hold: the one place that knows where a run keeps what.

A run has a logs folder (config.yml, model_shape.yml, history.csv, TensorBoard events, the
`latest/` and `best/` checkpoint slots) and a results folder (its dumps `acc<score>.pkl`, and
`eval/`, `retrieve/` for the dumps of --eval_only and `retrieve --dataset`). `Run` reads a run
through them: its config, history, selected round, dumps and checkpoints; the trainer writes
through the same paths. Nothing here imports TensorFlow, so input checks stay fast.
"""
import contextlib
import functools
import os
import re

from zscrgan import config as config_lib
from zscrgan.config import ConfigError
from zscrgan.errors import ResultsError, UsageError
from zscrgan.files import LockHeld, RunLock, read_yaml
from zscrgan.results.checkpoints import CheckpointSlot, round_of
from zscrgan.results.dumps import best_named_dump, dump_path, dumps_in
from zscrgan.results.history import (HISTORY_FILE, Selected, best_row, prec_column, read_history, round_row,
                                     score_key)

# A run's logs folder: its resolved config, the sizes its checkpoints depend on.
CONFIG_FILE, SHAPE_FILE = "config.yml", "model_shape.yml"
# Sub-folders: checkpoint slots and the report's pictures in the logs folder; the dumps of
# --eval_only and of `retrieve --dataset` in the results folder.
LATEST, BEST, PLOTS, EVAL, RETRIEVE = "latest", "best", "plots", "eval", "retrieve"
# An unnamed run keeps these beside its named runs' folders, so no run may be named so.
RESERVED_NAMES = (BEST, EVAL, LATEST, PLOTS, RETRIEVE)
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


def check_run_name(name):
    """Refuse (ConfigError) a run_name that is no folder name or is a run folder's sub-folder."""
    if not _RUN_NAME.match(name) or name in RESERVED_NAMES:
        raise ConfigError(f"run_name {name!r} is not usable as a folder name: use letters, digits and "
                          f"._=+- (not starting with one of those, and none of {', '.join(RESERVED_NAMES)})")


def member_name(seed, run_name=None):
    """The run name of the member of seed `seed` in a group (--seeds) named `run_name`:
    `seed<seed>`, or `seed<seed>_<run_name>` (the order of a sweep's trial labels)."""
    return f"seed{seed}" + (f"_{run_name}" if run_name else "")


def run_dirs(dataset, run_name=None, logs_dir=None, results_dir=None):
    """(logs folder, results folder) of a run; folders default to configs/default.yml's.

    Unnamed: the reference's `<logs_dir>/<dataset>_logs` and `<results_dir>/<dataset>_res`;
    named: a folder `<run_name>` inside each, so named runs never share a folder.
    """
    logs = os.path.join(logs_dir or default("logs_dir"), f"{dataset}_logs")
    results = os.path.join(results_dir or default("results_dir"), f"{dataset}_res")
    if run_name:
        check_run_name(run_name)
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
        saved = read_yaml(os.path.join(logs, CONFIG_FILE), "run config", ResultsError)
        return cls({"dataset": dataset, "run_name": run_name}, logs, results, saved)

    @classmethod
    def at(cls, logs):
        """The run whose logs folder is `logs` (its results folder from its config.yml, or None)."""
        saved = read_yaml(os.path.join(logs, CONFIG_FILE), "run config", ResultsError)
        if not saved or not saved.get("dataset"):
            return cls({}, logs, None, saved)
        results = run_dirs(saved["dataset"], saved.get("run_name"), None, saved.get("results_dir"))[1]
        return cls({}, logs, results, saved)

    def flags(self):
        """The flags by which a tool finds this run from its logs folder: `--dataset D [--run_name N]
        --logs_dir DIR` (run_dirs' layout read backwards), or None when its config names no dataset."""
        dataset, name = self.cfg.get("dataset"), self.cfg.get("run_name")
        if not dataset:
            return None
        dataset_logs = os.path.dirname(os.path.normpath(self.logs)) if name else os.path.normpath(self.logs)
        return f"--dataset {dataset}" + (f" --run_name {name}" if name else "") + \
            f" --logs_dir {os.path.dirname(dataset_logs) or '.'}"

    def path(self, name):
        """A file or folder of the run's logs folder (CONFIG_FILE, SHAPE_FILE, HISTORY_FILE, PLOTS, ...)."""
        return os.path.join(self.logs, name)

    def results_path(self, name):
        """A folder of the run's results folder (EVAL, RETRIEVE)."""
        return os.path.join(self.results, name)

    @property
    def history_path(self):
        return self.path(HISTORY_FILE)

    @property
    def select(self):
        return self.cfg["select"]

    @property
    def datasets_dir(self):
        """Where the run's dataset folder is: its config's datasets_dir (else configs/default.yml's)."""
        return self.cfg["datasets_dir"]

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

    @property
    def test_key(self):
        """The test Prec@K column, which names a dump."""
        return prec_column(self.top_k)

    def history(self, missing_ok=True):
        """(columns, rows) of the run's history.csv (see read_history)."""
        return read_history(self.history_path, missing_ok)

    def selected(self, rows=None):
        """The selected round's history row (the best of the run's selection metric), or None."""
        return best_row(self.history()[1] if rows is None else rows, self.selection_key)

    def best_test(self, rows=None):
        """The row of the best test Prec@K (the reference's protocol), or None."""
        return best_row(self.history()[1] if rows is None else rows, self.test_key)

    def scores(self, row):
        """{"best": the selection metric, "test_at_best": test Prec@K} of a row (Nones without one)."""
        if row is None:
            return {"best": None, "test_at_best": None}
        return {"best": row[self.selection_key], "test_at_best": row[self.test_key]}

    def dump_path(self, row):
        """The path of the dump a round wrote when it became the best (named by its test Prec@K)."""
        return dump_path(self.results, row[self.test_key])

    def dumps(self):
        """The dumps in the run's results folder (not its sub-folders), sorted by name."""
        return dumps_in(self.results) if self.results else []

    def selected_dump(self):
        """The dump of the selected round, or (a folder without a history, e.g. the reference's
        own dumps) its highest-named dump; None when there is none."""
        row = self.selected() if self.results else None
        if row is not None and os.path.isfile(self.dump_path(row)):
            return self.dump_path(row)
        return best_named_dump(self.results) if self.results else None

    # --- checkpoints ---------------------------------------------------------------

    def slot(self, which):
        """The run's LATEST or BEST checkpoint folder (a CheckpointSlot)."""
        return CheckpointSlot(self.path(which))

    def checkpoint(self, which=BEST, required=False):
        """A checkpoint prefix: `best` or `latest` (None when the slot is empty, or with
        `required` a ResultsError), or a path: a prefix (.../best/ckpt-7) or a folder holding
        one. Raises ResultsError for a bad path."""
        if which in (BEST, LATEST):
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

    def rounds_done(self):
        """The rounds the run has finished: its latest checkpoint's round (0 without one), where
        --resume goes on (history rows after it are redone)."""
        latest = self.checkpoint(LATEST)
        return round_of(latest) if latest else 0

    def finished(self):
        """Whether the run has nothing left to do: all its epochs done, or stopped early by its
        `patience` (docs/algorithm.md §11.2)."""
        done = self.rounds_done()
        return done >= self.cfg["epochs"] or self.selected_so_far(None, []).patience_over(
            self.cfg.get("patience", 0), done)

    def selected_so_far(self, score, rows):
        """The Selected round of a run in progress: the round its best/ checkpoint holds (0 before
        any), `score` the best score its checkpoint records, and that round's test Prec@K in `rows`."""
        best = self.checkpoint(BEST)
        best_round = round_of(best) if best else 0
        row = round_row(rows, best_round)
        return Selected(best_round, score, row and row[self.test_key])

    # --- the lock ------------------------------------------------------------------

    @contextlib.contextmanager
    def held(self, folders=None):
        """Hold the locks of the run's folders (default: logs and results) for this process, or
        refuse (UsageError) when another run holds one."""
        locks = []
        try:
            for folder in folders or (self.logs, self.results):
                os.makedirs(folder, exist_ok=True)
                try:
                    locks.append(RunLock(folder).acquire())
                except LockHeld as e:
                    raise UsageError(f"another run is using {folder} ({e}); wait for it to finish, "
                                     "or give this run another --logs_dir/--results_dir or a --run_name")
            yield
        finally:
            for lock in reversed(locks):
                lock.release()


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


