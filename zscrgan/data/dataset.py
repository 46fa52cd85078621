"""Dataset folders (docs/algorithm.md §1): safe loading, validation, writing.

A folder holds four pickles: `txt_embed_dict.pkl` and `image_embed_dict.pkl`
({class id: list or 2-D array of vectors}), `trainids.pkl` (seen classes) and
`testids.pkl` (unseen classes). The published ones are Python 2 pickles. An optional
fifth, `valids.pkl`, lists seen classes a run may hold out as validation classes
(docs/algorithm.md §11.2).
"""
import dataclasses
import os
import pickle

import numpy as np

from zscrgan.config import is_int
from zscrgan.data.pickles import Refused, restricted_load
from zscrgan.errors import BadInput

FILES = ("txt_embed_dict.pkl", "image_embed_dict.pkl", "trainids.pkl", "testids.pkl")
VALIDS = "valids.pkl"


class DatasetError(BadInput, ValueError):
    """A missing, unsafe or invalid dataset; the message names the file and the problem."""


def load_pickle(path):
    """Load one pickle safely (Python 2 files included). Raises DatasetError."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path} is missing")
    try:
        with open(path, "rb") as f:
            return restricted_load(f)
    except Refused as e:
        raise DatasetError(f"{path}: {e} (only containers, numbers, strings and numpy arrays are allowed)")
    except Exception as e:  # truncated or corrupt files raise many kinds of errors
        raise DatasetError(f"{path} is not a readable pickle ({type(e).__name__}: {e})")


@dataclasses.dataclass
class Dataset:
    """A validated dataset.

    text, images: {class id: float32 array (n_c, T) / (n_c, I)}, in each file's stored key
        order (the evaluation's query and gallery order, docs/algorithm.md §7).
    train_ids, test_ids: class ids (seen / unseen), in file order.
    """
    name: str
    text: dict
    images: dict
    train_ids: list
    test_ids: list

    @property
    def text_dim(self):
        return next(iter(self.text.values())).shape[1]

    @property
    def image_dim(self):
        return next(iter(self.images.values())).shape[1]


def _class_id(value, where):
    if not is_int(value):
        raise DatasetError(f"{where}: class ids must be integers, got {value!r}")
    return int(value)


def class_vectors(dict_obj, fname):
    """{id: list / 2-D array} -> {int id: float32 (n, d)}, one d for the whole file; DatasetError naming
    `fname` when it is not that."""
    if not isinstance(dict_obj, dict):
        raise DatasetError(f"{fname} must hold a dict of class id -> vectors, got {type(dict_obj).__name__}")
    out, dim = {}, None
    for key, value in dict_obj.items():
        cid = _class_id(key, fname)
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise DatasetError(f"{fname}: class {cid} must map to a list or 2-D array, got {type(value).__name__}")
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError):
            raise DatasetError(f"{fname}: class {cid} holds vectors of different lengths or non-numbers")
        if arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, 0)
        if arr.ndim != 2:
            raise DatasetError(f"{fname}: class {cid} must hold vectors (a 2-D array), got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise DatasetError(f"{fname}: class {cid} has no vectors")
        if dim is not None and arr.shape[1] != dim:
            raise DatasetError(f"{fname}: vectors have different lengths ({dim} and {arr.shape[1]} in class {cid})")
        dim = arr.shape[1]
        if not np.all(np.isfinite(arr)):
            raise DatasetError(f"{fname}: class {cid} holds NaN or infinite values")
        out[cid] = arr
    if not out:
        raise DatasetError(f"{fname} holds no classes")
    return out


def _ids(obj, fname):
    if isinstance(obj, np.ndarray):
        obj = obj.ravel().tolist()
    if not isinstance(obj, (list, tuple, set, frozenset)):
        raise DatasetError(f"{fname} must hold a list of class ids, got {type(obj).__name__}")
    ids = [_class_id(v, fname) for v in obj]
    if not ids:
        raise DatasetError(f"{fname} holds no class ids")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{fname} lists a class id twice")
    return ids


def stack(vectors, ids=None):
    """{class id: (n_c, d)} -> (rows (N, d), labels (N,) int64): the classes in the dict's stored
    key order (the evaluation's, docs/algorithm.md §7.1), only those in `ids` if given, each
    class's rows in order."""
    wanted = None if ids is None else set(ids)
    chosen = [c for c in vectors if wanted is None or c in wanted]
    rows = np.concatenate([vectors[c] for c in chosen])
    labels = np.concatenate([np.full(len(vectors[c]), c, np.int64) for c in chosen])
    return rows, labels


def eval_split(dataset, ids=None):
    """The test split stacked as the evaluation takes it (docs/algorithm.md §7.1): (texts (Q, T),
    query labels (Q,), images (N, I), gallery labels (N,)), classes in each dict's stored key
    order (not testids.pkl's), each class's vectors in order.

    ids: other classes to stack the same way (the validation classes, docs/algorithm.md §11.2).
    """
    wanted = dataset.test_ids if ids is None else ids
    return (*stack(dataset.text, wanted), *stack(dataset.images, wanted))


def validate(text, images, train_ids, test_ids):
    """docs/algorithm.md §1 checks on already-converted parts; raises DatasetError."""
    overlap = sorted(set(train_ids) & set(test_ids))
    if overlap:
        raise DatasetError(f"trainids.pkl and testids.pkl share classes {overlap[:10]}: zero-shot needs disjoint splits")
    for fname, ids in (("trainids.pkl", train_ids), ("testids.pkl", test_ids)):
        for dname, d in (("txt_embed_dict.pkl", text), ("image_embed_dict.pkl", images)):
            missing = [c for c in ids if c not in d]
            if missing:
                raise DatasetError(f"{fname} lists class {missing[0]} that {dname} does not have")


def dataset_warnings(dataset, k):
    """What a valid dataset may still get wrong for this model, one sentence each.

    The reference ran on such data without a word, so these are warnings, not errors;
    `python run_exp.py` and `python -m zscrgan prepare check` print them. k: the K of Prec@K.
    """
    found = []
    used = set(dataset.train_ids) | set(dataset.test_ids)
    for fname, d in (("txt_embed_dict.pkl", dataset.text), ("image_embed_dict.pkl", dataset.images)):
        extra = sorted(set(d) - used)
        if extra:
            found.append(f"{fname} has {len(extra)} classes in neither split (training ignores them): {extra[:10]}")
    gallery = sum(len(dataset.images[c]) for c in dataset.test_ids)
    if gallery < k:
        found.append(f"gallery has {gallery} images, fewer than K = {k}: Prec@{k} uses K' = {gallery}")
    if len(dataset.test_ids) == 1:
        found.append(f"only one unseen class ({dataset.test_ids[0]}): every gallery image is of the query's "
                     f"class, so Prec@{k} is 1.0 for any model")
    if len(dataset.train_ids) == 1:
        found.append("only one seen class: a batch's 'wrong' pairs are then of the same class")
    img_min = min(float(v.min()) for v in dataset.images.values())
    if img_min < 0:
        found.append(f"image features go down to {img_min:.4g}, but the generator ends in a ReLU and "
                     f"only makes values >= 0 (ResNet features are >= 0)")
    for label, d in (("text", dataset.text), ("image", dataset.images)):
        zeros = sum(int(np.sum(~v.any(axis=1))) for v in d.values())
        if zeros:
            found.append(f"{zeros} {label} vectors are all zeros (cosine similarity is undefined for them)")
    return found


def check_val_ids(val_ids, train_ids, where):
    """Validation classes must be at least 2 seen classes and leave at least 2 for training;
    raises DatasetError starting with `where`."""
    stray = [c for c in val_ids if c not in set(train_ids)]
    if stray:
        raise DatasetError(f"{where}: class {stray[0]} is not a seen class (validation classes are "
                           f"held out of trainids.pkl's {len(train_ids)} classes)")
    if len(val_ids) < 2:
        raise DatasetError(f"{where} lists {len(val_ids)} class: validation needs at least 2 (with one, "
                           "every retrieved image is of the query's class)")
    if len(train_ids) - len(val_ids) < 2:
        raise DatasetError(f"{where} holds out {len(val_ids)} of the {len(train_ids)} seen classes: at "
                           "least 2 must stay for training")


def load_val_ids(folder, train_ids):
    """The checked class ids of `<folder>/valids.pkl`, or None when the folder has none."""
    path = os.path.join(folder, VALIDS)
    if not os.path.isfile(path):
        return None
    ids = _ids(load_pickle(path), path)
    check_val_ids(ids, train_ids, path)
    return ids


def load_dataset(folder):
    """Load and validate a dataset folder. Raises DatasetError with a one-line message."""
    if not os.path.isdir(folder):
        raise DatasetError(f"dataset folder {folder} not found")
    for fname in FILES:
        if not os.path.isfile(os.path.join(folder, fname)):
            raise DatasetError(f"{os.path.join(folder, fname)} is missing (a dataset folder needs {', '.join(FILES)})")
    raw = {f: load_pickle(os.path.join(folder, f)) for f in FILES}
    text = class_vectors(raw["txt_embed_dict.pkl"], os.path.join(folder, "txt_embed_dict.pkl"))
    images = class_vectors(raw["image_embed_dict.pkl"], os.path.join(folder, "image_embed_dict.pkl"))
    train_ids = _ids(raw["trainids.pkl"], os.path.join(folder, "trainids.pkl"))
    test_ids = _ids(raw["testids.pkl"], os.path.join(folder, "testids.pkl"))
    try:
        validate(text, images, train_ids, test_ids)
    except DatasetError as e:
        raise DatasetError(f"{folder}: {e}")
    return Dataset(os.path.basename(os.path.normpath(folder)), text, images, train_ids, test_ids)


def save_dataset(folder, text, images, train_ids, test_ids, val_ids=None):
    """Write a dataset folder in the published format (pickle protocol 2).

    text, images: {class id: (n_c, d) array or list of vectors}. The dicts are stored in
    ascending class id, so the evaluation's order (their stored order) is the ids' order.
    val_ids, if given, go to valids.pkl.
    """
    os.makedirs(folder, exist_ok=True)
    parts = {
        "txt_embed_dict.pkl": {int(c): np.asarray(text[c], np.float32) for c in sorted(text)},
        "image_embed_dict.pkl": {int(c): np.asarray(images[c], np.float32) for c in sorted(images)},
        "trainids.pkl": [int(c) for c in train_ids],
        "testids.pkl": [int(c) for c in test_ids],
    }
    if val_ids is not None:
        parts[VALIDS] = [int(c) for c in val_ids]
    for fname, obj in parts.items():
        with open(os.path.join(folder, fname), "wb") as f:
            pickle.dump(obj, f, protocol=2)


def list_datasets(datasets_dir):
    """Names of the folders in `datasets_dir` that hold all four files."""
    if not os.path.isdir(datasets_dir):
        return []
    return sorted(d for d in os.listdir(datasets_dir) if not d.startswith(".")
                  and all(os.path.isfile(os.path.join(datasets_dir, d, f)) for f in FILES))


PAPER_DATASETS = ("the paper's datasets (AWA1, AWA2, CUB, FLO, NAB_SCS, NAB_SCE, WIKI) come from the authors' "
                  "links in README.md, 'Getting the data'")


def dataset_folder(datasets_dir, name):
    """`<datasets_dir>/<name>`; DatasetError naming the datasets that are there when it is not a folder."""
    folder = os.path.join(datasets_dir, name)
    if not os.path.isdir(folder):
        have = ", ".join(list_datasets(datasets_dir)) or "none"
        raise DatasetError(f"dataset '{name}' not found in {datasets_dir}/ (found: {have}); {PAPER_DATASETS}")
    return folder
