"""A sweep file and the trials it asks for, checked before anything starts.

SWEEP.yml:

    datasets: [MFEAT]                  # dataset folder names (required)
    seeds: [0, 1, 2, 3, 4]             # (required)
    set: {epochs: 50}                  # overrides for every trial: keys of configs/default.yml
    grid: {CSEM_lr: [0.002, 0.001]}    # every combination of these values
    resources: {cpus: 1, gpus: 0}      # per trial (default 1 CPU, no GPU; gpus: 0.25 = 4 trials a GPU)

Each trial is an ordinary run (configs/default.yml, then configs/<dataset>.yml, then `set`,
then the trial's grid values and seed) named `results.trials.trial_label(seed, grid)`, with
`logs_dir` DIR/logs, `results_dir` DIR/results and `threads` = its CPUs.
"""
import itertools
import os
import re

from zscrgan import config as config_lib
from zscrgan.config import ConfigError, is_int
from zscrgan.errors import BadInput
from zscrgan.files import read_yaml
from zscrgan.results.run import check_run_name, default
from zscrgan.results.trials import sweep_dirs, trial_label

SWEEP_KEYS = ("datasets", "seeds", "set", "grid", "resources")
# Keys each trial gets from the sweep itself; datasets_dir is a path, not a setting to grid over.
OWN_KEYS = ("dataset", "seed", "run_name", "logs_dir", "results_dir", "threads")
NOT_IN_GRID = OWN_KEYS + ("datasets_dir",)
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class SweepError(BadInput):
    """Bad input: reported as one `error:` line, exit status 2, before anything starts."""


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


def _read_sweep_file(path):
    """The sweep file's mapping; YAML errors name the line and column."""
    if not os.path.isfile(path):
        raise SweepError(f"{path}: no such sweep file")
    raw = read_yaml(path, "sweep file", SweepError)
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
    if not (is_int(cpus) and cpus >= 1):
        raise SweepError(f"resources: cpus must be an integer >= 1, got {cpus!r}")
    # A fraction lets several trials share one GPU (Ray Tune's fractional GPUs; each process grows
    # its GPU memory as needed, zscrgan/run/devices.py); more than one GPU is a whole number.
    whole = (is_int(gpus) or isinstance(gpus, float) and gpus.is_integer()) and gpus >= 0
    share = isinstance(gpus, float) and 0 < gpus < 1
    if not (whole or share):
        raise SweepError(f"resources: gpus must be 0, a share of one GPU between 0 and 1 (0.25: four trials "
                         f"a GPU) or a whole number of GPUs, got {gpus!r}")
    return {"cpus": cpus, "gpus": int(gpus) if whole else gpus}


def load_sweep(path):
    """The sweep file at `path`, checked and resolved: every section present, the resources'
    defaults filled in and `set: datasets_dir` made absolute (relative to the working
    directory). Raises SweepError."""
    raw = _read_sweep_file(path)
    try:
        datasets = _unique_list(raw["datasets"], "datasets",
                                lambda d: isinstance(d, str) and _DATASET_NAME.match(d))
        seeds = _unique_list(raw["seeds"], "seeds", lambda s: is_int(s) and s >= 0)
        settings = dict(_mapping(raw.get("set"), "set"))
        grid = _mapping(raw.get("grid"), "grid")
        for key in settings:
            if key in OWN_KEYS:
                raise SweepError(f"set: '{key}' is set by the sweep for each trial")
        for section, keys in (("set", settings), ("grid", grid)):
            if "seeds" in keys:
                raise SweepError(f"{section}: 'seeds' is not a trial's setting: a sweep has its own seeds: list, "
                                 "one trial each")
        for key, values in grid.items():
            if key in NOT_IN_GRID:
                raise SweepError(f"grid: '{key}' cannot be a grid key")
            if key in settings:
                raise SweepError(f"'{key}' is in both set and grid")
            _unique_list(values, f"grid: {key}", lambda v: True)
        resources = _resources(_mapping(raw.get("resources"), "resources"))
    except SweepError as e:
        raise SweepError(f"{path}: {e}")
    folder = settings.get("datasets_dir", default("datasets_dir"))
    if isinstance(folder, str):
        settings["datasets_dir"] = os.path.abspath(folder)
    return {"datasets": datasets, "seeds": seeds, "set": settings, "grid": grid, "resources": resources}


def trial_configs(sweep, source, out):
    """{"<dataset>/<trial label>": resolved config (a plain dict)} in the order the trials run.

    Layers: configs/default.yml, configs/<dataset>.yml, `set`, the trial's grid values, then
    what the sweep fixes (seed, run name, DIR's folders, threads). Raises SweepError.
    """
    keys = list(sweep["grid"])
    logs_dir, results_dir = sweep_dirs(out)
    trials = {}
    try:
        for dataset in sweep["datasets"]:
            base = config_lib.load_config(flags={"dataset": dataset})
            base = config_lib.merge(base, sweep["set"], f"{source}: set")
            for seed, values in itertools.product(sweep["seeds"], itertools.product(*sweep["grid"].values())):
                cfg = config_lib.merge(base, dict(zip(keys, values)), f"{source}: grid")
                grid = {k: cfg[k] for k in keys}  # as coerced: 1 and 1.0 of a float key are one value
                name = trial_label(seed, grid)
                cfg.update(seed=seed, run_name=name, logs_dir=logs_dir, results_dir=results_dir,
                           threads=sweep["resources"]["cpus"])
                try:
                    config_lib.validate(cfg)
                    check_run_name(name)
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
    """Every trial's own checks before anything starts, as `run.loop.run` makes them: its dataset
    loaded (once per folder) and its validation classes resolved against it."""
    from easydict import EasyDict
    from zscrgan.run import loop
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
