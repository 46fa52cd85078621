"""Retrieval dumps (docs/algorithm.md §7.4): `acc<score>.pkl`, a pickled list with one
{query class id: [K retrieved class ids, best first]} per query, named by its Prec@K.
"""
import glob
import os
import pickle
import re

from zscrgan.config import is_int
from zscrgan.data.pickles import Refused, restricted_load
from zscrgan.errors import ResultsError
from zscrgan.files import atomic_write
from zscrgan.results.history import HISTORY_FILE

# Dumps hold only lists, dicts and numbers. The reference (Python 2) pickled numpy int64
# class ids, which arrive as numpy scalars; nothing else is admitted.
_DUMP_GLOBALS = frozenset({
    ("__builtin__", "long"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
})


def dump_path(folder, score):
    """`<folder>/acc<str(score)>.pkl`, as the reference names a dump (docs/algorithm.md §7.4)."""
    return os.path.join(folder, f"acc{score}.pkl")


def write_dump(folder, score, records):
    """Write a dump (a list of {query class: [K retrieved classes]}) named by its score; returns its path."""
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


def dumps_in(folder):
    """The dumps `acc<score>.pkl` directly in `folder` (sub-folders not searched), sorted by name."""
    return sorted(p for p in glob.glob(os.path.join(glob.escape(folder), "acc*.pkl")) if name_score(p) is not None)


def best_named_dump(folder):
    """The highest-scoring `acc<score>.pkl` in folder (the earliest name on ties), or None."""
    named = sorted((-float(name_score(p)), os.path.basename(p)) for p in dumps_in(folder))
    return os.path.join(folder, named[0][1]) if named else None


def _class_id(value):
    if not is_int(value):
        raise TypeError(repr(value))
    return int(value)


def load_dump(path):
    """Load and check a dump: a list of {query class id: [K retrieved class ids]}, one K.

    Returns the records with plain int ids. Raises ResultsError.
    """
    if not os.path.isfile(path):
        raise ResultsError(f"{path}: {_not_a_file(path)}")
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


def _not_a_file(path):
    """Why `path` is not a dump file: missing, or a folder (naming the dumps it holds)."""
    if not os.path.isdir(path):
        return "no such file"
    held = [os.path.basename(p) for p in dumps_in(path)]
    if not held and os.path.isfile(os.path.join(path, HISTORY_FILE)):
        return f"a run's logs folder, not a dump: read its rounds with `zscrgan inspect --history {path}`"
    if not held:
        return "a folder, not a dump acc<score>.pkl (and it holds none)"
    return f"a folder, not a dump: give one of the dumps it holds ({', '.join(held[:3])}{', ...' * (len(held) > 3)})"
