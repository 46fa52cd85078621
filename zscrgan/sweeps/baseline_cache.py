"""The sweep report's baselines (ridge, CCA, chance), computed once and kept beside the report.

zscrgan.model.baselines.compare takes tens of seconds a dataset and seed, and its figures
depend only on what the key below names, so `write_report(DIR)` keeps each (dataset, seed, K)
in DIR/.baselines/<hash of the key>.json:
    {"format": FORMAT, "key": {...}, "scores": {"ridge" | "cca" | "chance": [Prec@K, mAP@K]}}
The key: the SHA-256 of each of the dataset folder's files (the features, trainids.pkl and
testids.pkl: the split, valids.pkl when present), K, the seed, compare's PARAMETERS, and the
versions of the libraries that compute them. JSON writes a float as its shortest repr, which
reads back as the same float, so a report from the cache is byte for byte the one computed.
A file that is missing, unreadable or of another key is ignored and written again.
"""
import hashlib
import json
import os
from importlib import metadata

from zscrgan.data.dataset import FILES, VALIDS, DatasetError, dataset_folder, load_dataset
from zscrgan.files import atomic_write

FORMAT = 1  # raise it when the file or what compare computes changes
CACHE = ".baselines"
PARAMETERS = {"alpha": 1.0, "cca_components": None, "max_pairs": 2000}  # compare's, as the report calls it
LIBRARIES = ("numpy", "scikit-learn", "tensorflow", "tensorflow-cpu")


def library_versions():
    """{distribution: version} of the LIBRARIES installed."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def file_digests(folder):
    """{file name: SHA-256 hex} of a dataset folder's files, or None when one of FILES is missing."""
    names = FILES + ((VALIDS,) if os.path.isfile(os.path.join(folder, VALIDS)) else ())
    if not all(os.path.isfile(os.path.join(folder, name)) for name in names):
        return None
    digests = {}
    for name in names:
        h = hashlib.sha256()
        with open(os.path.join(folder, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests[name] = h.hexdigest()
    return digests


def entry_path(cache_dir, key):
    text = json.dumps(key, sort_keys=True)
    return os.path.join(cache_dir, hashlib.sha256(text.encode()).hexdigest()[:24] + ".json")


def read_entry(path, key):
    """The scores {name: (Prec@K, mAP@K)} a cache file holds for `key`, or None (missing, damaged,
    another key or format)."""
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        if entry["format"] != FORMAT or entry["key"] != key:
            return None
        return {name: (prec, mean_ap) for name, (prec, mean_ap) in entry["scores"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_entry(path, key, scores):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps({"format": FORMAT, "key": key, "scores": scores}, indent=1, sort_keys=True)
    atomic_write(path, text.encode(), "baselines")


class Baselines:
    """zscrgan.model.baselines' ridge, CCA and chance scores, computed once per (dataset, seed, K):
    in memory for one report, and in `cache_dir` (None: not kept) across reports."""

    def __init__(self, cache_dir=None):
        self.cache_dir = cache_dir
        self.datasets, self.scores, self.digests = {}, {}, {}
        self.libraries = library_versions()

    def __call__(self, datasets_dir, name, seed, k):
        """{"ridge"|"cca"|"chance": (Prec@K, mAP@K)}, or a note (str) when the dataset cannot be loaded."""
        folder = os.path.join(datasets_dir, name)
        if (folder, seed, k) not in self.scores:
            self.scores[folder, seed, k] = self._scores(datasets_dir, name, seed, k)
        return self.scores[folder, seed, k]

    def _scores(self, datasets_dir, name, seed, k):
        folder = os.path.join(datasets_dir, name)
        if self.cache_dir and folder not in self.digests:  # once a folder, not once a seed and K
            self.digests[folder] = file_digests(folder)
        digests = self.digests.get(folder)
        key = path = None
        if digests is not None:
            key = {"files": digests, "k": k, "seed": seed, **PARAMETERS, "libraries": self.libraries}
            path = entry_path(self.cache_dir, key)
            cached = read_entry(path, key)
            if cached is not None:
                return cached
        dataset = self._dataset(datasets_dir, name)
        if isinstance(dataset, str):
            return dataset
        from zscrgan.model import baselines  # TensorFlow: imported only when baselines are computed
        _, rows = baselines.compare(dataset, k, seed, **PARAMETERS)
        scores = {row.key: (row.prec, row.map) for row in rows}
        if path is not None:
            try:
                write_entry(path, key, scores)
            except OSError:  # a cache that cannot be written costs time next report, not this report
                pass
        return scores

    def _dataset(self, datasets_dir, name):
        folder = os.path.join(datasets_dir, name)
        if folder not in self.datasets:
            try:
                self.datasets[folder] = load_dataset(dataset_folder(datasets_dir, name))
            except DatasetError as e:
                self.datasets[folder] = f"no baselines: {e}"
        return self.datasets[folder]
