"""Configuration: defaults, per-dataset overrides, a user file, command-line flags.

Layers, each overriding the one before: `configs/default.yml` (every key, with the
reference's defaults), `configs/<dataset>.yml` if it exists, `--config FILE`, then flags.
Merging is strict: a key missing from the defaults, or a value of the wrong type, is a
`ConfigError` naming the key and where it came from.
"""
import math
import numbers
import os
import re

from easydict import EasyDict

from zscrgan.errors import BadInput
from zscrgan.files import read_yaml

_HERE = os.path.dirname(os.path.abspath(__file__))
# An installed package carries configs/ inside it (pyproject.toml); a clone has it beside zscrgan/.
CONFIG_DIR = next((d for d in (os.path.join(_HERE, "configs"), os.path.join(os.path.dirname(_HERE), "configs"))
                   if os.path.isdir(d)), os.path.join(os.path.dirname(_HERE), "configs"))
DEFAULT_FILE = os.path.join(CONFIG_DIR, "default.yml")

# Keys whose default is null: their type when set.
_NULLABLE_TYPES = {"dataset": str, "run_name": str, "seeds": list}

# Keys added after the reference's layout, with the value that leaves a run as it was:
# config.yml omits them at that value, so a run that does not use them writes the same files.
OPT_IN = {"run_name": None, "threads": 0, "val_classes": None, "select": "test", "patience": 0, "seeds": None,
          "tf32": False}

# val_classes: null, a number of seen classes to hold out, a list of class ids, or this word.
VAL_FILE = "file"
SELECT = ("test", "val")

# (key, lowest allowed, inclusive?): what the formulas of docs/algorithm.md need to make sense.
_RANGES = [
    ("batch_size", 2, True), ("embed_dim", 1, True), ("z_dim", 1, True),
    ("gf_dim", 1, True), ("df_dim", 1, True), ("epochs", 0, True),
    ("e_steps", 0, True), ("n_critic", 1, True), ("m_steps", 0, True),
    ("top_k", 1, True), ("eval_chunk", 1, True), ("clip_val", 0, False),
    ("threads", 0, True), ("patience", 0, True),
    ("discriminator_lr", 0, True), ("generator_lr", 0, True), ("CSEM_lr", 0, True),
    ("kl_div_coefficient", 0, True), ("mm_reg_coeff", 0, True), ("margin", 0, True),
]


class ConfigError(BadInput, ValueError):
    """A bad configuration file or value; the message says which and how to fix it."""


def read_file(path):
    """The mapping in a YAML config file ({} when empty); ConfigError naming the file, and line and column."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} not found")
    return read_yaml(path, "config file", ConfigError) or {}


def defaults():
    """The default configuration (a plain dict) from configs/default.yml."""
    return read_file(DEFAULT_FILE)


def _expected_type(key, default):
    return _NULLABLE_TYPES.get(key, type(default))


def comments(path=DEFAULT_FILE):
    """{key: its end-of-line comment} for the top-level `key: value  # comment` lines of a
    YAML file: configs/default.yml documents every key this way, for --help too."""
    found = {}
    with open(path) as f:
        for line in f:
            match = re.match(r"(\w+):.*?\s#\s*(.*?)\s*$", line)  # YAML: a comment starts at " #"
            if match:
                found[match.group(1)] = match.group(2)
    return found


_METAVARS = {int: "INT", float: "FLOAT", bool: "BOOL", list: "LIST"}
_KEY_METAVARS = {"dataset": "NAME", "run_name": "NAME", "datasets_dir": "DIR", "results_dir": "DIR",
                 "logs_dir": "DIR", "val_classes": "N|IDS|file", "select": "|".join(SELECT)}


def _as_flag(value):
    """A default written as it would be on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def flag_help():
    """{key: (metavar, help)} for the command-line flag of every key of configs/default.yml:
    what it is (the file's comment), its type and its default there."""
    notes = comments()
    docs = {}
    for key, default in defaults().items():
        kind = _expected_type(key, default)
        metavar = _KEY_METAVARS.get(key) or _METAVARS.get(kind, "TEXT")
        text = notes.get(key, "").replace("%", "%%")  # argparse %-formats help
        if default is not None:
            text += f" (default: {_as_flag(default)})"
        docs[key] = metavar, text
    return docs


def is_int(x):
    """An integer (Python's or numpy's), and not a bool (YAML's true is an int to Python)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _val_classes(value, source):
    """val_classes takes one of four forms: null, a count, a list of class ids, or 'file'."""
    if value is None or value == VAL_FILE or is_int(value):
        return value
    if isinstance(value, list) and value and all(is_int(x) for x in value):
        return value
    raise ConfigError(f"{source}: key 'val_classes' must be null, a number of seen classes, a list of "
                      f"class ids or '{VAL_FILE}', got {value!r}")


def _seeds(value, source):
    """seeds: null, or a list of distinct seeds (integers >= 0)."""
    if value is None or (isinstance(value, list) and value and all(is_int(s) and s >= 0 for s in value)
                         and len(set(value)) == len(value)):
        return value
    raise ConfigError(f"{source}: key 'seeds' must be null or a list of distinct integers >= 0, got {value!r}")


def _coerce(key, value, expected, source):
    """Check `value` against `expected`; ints are accepted where floats are expected."""
    if key == "val_classes":
        return _val_classes(value, source)
    if key == "seeds":
        return _seeds(value, source)
    if value is None and key in _NULLABLE_TYPES:
        return None
    if expected is float and is_int(value):
        return float(value)
    if expected is list:
        if isinstance(value, list) and value and all(is_int(x) and x >= 1 for x in value):
            return value
        raise ConfigError(f"{source}: key '{key}' must be a non-empty list of positive integers, got {value!r}")
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{source}: key '{key}' must be {expected.__name__}, got {value!r}")


def _parse_flag(key, text, expected):
    """Convert a command-line string to the key's type."""
    try:
        if key == "val_classes":
            if text in (VAL_FILE, "null"):
                return None if text == "null" else text
            return [int(x) for x in text.split(",")] if "," in text else int(text)
        if expected is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if expected is list:
            return None if text == "null" and key in _NULLABLE_TYPES else [int(x) for x in text.split(",")]
        return expected(text)
    except ValueError:
        what = "comma-separated integers" if expected is list else expected.__name__
        if key == "val_classes":
            what = f"a number of classes, comma-separated class ids, '{VAL_FILE}' or 'null'"
        raise ConfigError(f"--{key}: expected {what}, got {text!r}")


def merge(base, overrides, source):
    """Return `base` updated with `overrides`, rejecting unknown keys and wrong types."""
    merged = dict(base)
    for key, value in overrides.items():
        if key not in base:
            raise ConfigError(f"{source}: unknown key '{key}' (known keys are in {os.path.relpath(DEFAULT_FILE)})")
        merged[key] = _coerce(key, value, _expected_type(key, base[key]), source)
    return merged


def validate(cfg):
    """Range checks; raises ConfigError naming the first bad key."""
    if not cfg["dataset"]:
        raise ConfigError("no dataset given: use --dataset NAME")
    _validate_selection(cfg)
    for key, low, inclusive in _RANGES:
        value = cfg[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config value {key} = {value!r} must be a finite number")
        if value < low or (not inclusive and value == low):
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ConfigError(f"config value {key} = {value!r} is out of range: it must be {bound}")


def _validate_selection(cfg):
    """val_classes and select make sense together (docs/algorithm.md §11.2); the ids are checked
    against the dataset when it is loaded (`zscrgan.data.selection.resolve_val_ids`)."""
    val, select = cfg["val_classes"], cfg["select"]
    if select not in SELECT:
        raise ConfigError(f"config value select = {select!r} must be one of {', '.join(SELECT)}")
    if select == "val" and val is None:
        raise ConfigError("select = val needs validation classes: set val_classes to a number of seen "
                          f"classes to hold out, a list of class ids, or '{VAL_FILE}'")
    if cfg.get("seeds") and is_int(val):
        raise ConfigError(f"val_classes = {val} with seeds would hold out other classes in each member (drawn "
                          "from its seed): give the validation classes as a list of ids or 'file'")
    if is_int(val) and val < 2:
        raise ConfigError(f"config value val_classes = {val} is out of range: it must be >= 2 (with one "
                          "validation class every retrieved image is of the query's class)")
    if isinstance(val, list) and (len(val) < 2 or len(set(val)) != len(val)):
        raise ConfigError(f"config value val_classes = {val} must list at least 2 distinct class ids")


def to_save(cfg):
    """The mapping written as a run's config.yml: every key, except opt-in keys left off."""
    return {k: v for k, v in cfg.items() if not (k in OPT_IN and v == OPT_IN[k])}


def load_config(dataset=None, config_file=None, flags=None):
    """Resolve the configuration for one run.

    flags: {key: string from the command line}, applied last.
    Returns an EasyDict with every key of configs/default.yml.
    """
    base = defaults()
    cfg = dict(base)
    flags = dict(flags or {})
    if dataset is not None:
        flags.setdefault("dataset", dataset)
    name = flags.get("dataset")
    if name:
        dataset_file = os.path.join(CONFIG_DIR, f"{name}.yml")
        if os.path.isfile(dataset_file):
            cfg = merge(cfg, read_file(dataset_file), os.path.relpath(dataset_file))
    if config_file:
        cfg = merge(cfg, read_file(config_file), config_file)
    for key, text in flags.items():
        if key not in base:
            raise ConfigError(f"--{key}: unknown option")
        expected = _expected_type(key, base[key])
        cfg[key] = text if not isinstance(text, str) else _parse_flag(key, text, expected)
        cfg[key] = _coerce(key, cfg[key], expected, f"--{key}")
    validate(cfg)
    return EasyDict(cfg)
