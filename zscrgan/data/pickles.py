"""Pickles that cannot run code: an unpickler that admits only the globals it is given.

The published datasets are Python 2 pickles of dicts and numpy arrays, and a retrieval dump
is a pickled list of dicts: neither needs more than containers, numbers, strings and the
numpy names below (docs/algorithm.md §10.4), so anything else is refused before it can run.
"""
import codecs
import pickle

import numpy as np

_MULTIARRAY = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
# Everything Python 2 / numpy 1 / numpy 2 pickles of such files may name, with what each
# name is loaded as. Numpy 1 and Python 2 files name numpy.core.
SAFE_GLOBALS = {
    ("__builtin__", "set"): set, ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset, ("builtins", "frozenset"): frozenset,
    ("__builtin__", "long"): int, ("__builtin__", "unicode"): str,
    ("__builtin__", "bytes"): bytes, ("builtins", "bytes"): bytes,  # empty buffers in protocol-2 files
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("_codecs", "encode"): codecs.encode,
}


class Refused(pickle.UnpicklingError):
    """The pickle names something outside the allowed globals."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits builtin containers, numbers and strings, plus the globals in `allowed`."""

    def __init__(self, f, allowed):
        super().__init__(f, encoding="latin1")  # Python 2 files hold numpy buffers as str
        self.allowed = allowed

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise Refused(f"refused to load {module}.{name}")
        return SAFE_GLOBALS[(module, name)]


def restricted_load(f, allowed=frozenset(SAFE_GLOBALS)):
    """Unpickle from the open file `f`, admitting only the globals in `allowed` (a subset of
    SAFE_GLOBALS' keys). Raises Refused for anything else."""
    return _RestrictedUnpickler(f, allowed).load()
