"""Converters to native dataset folders (docs/algorithm.md §1) from what researchers have,
the folder writer and its summary (`zscrgan prepare` is their command line).

A folder is written into its staging folder beside --out, checked with the project's own
loader, then renamed into place: a failed write leaves --out as it was. An existing
non-empty --out is refused; --force replaces it, but only when it is a dataset folder
(nothing in it but the four pickles and valids.pkl). `gbu` also writes valids.pkl, the
xlsa17 split's validation classes (docs/algorithm.md §11.2); `arrays` writes it from --val.
"""
import os
import shutil

import numpy as np

from zscrgan.config import defaults
from zscrgan.data.dataset import (FILES, VALIDS, DatasetError, check_val_ids, dataset_warnings, load_dataset,
                                  load_val_ids, save_dataset, validate)
from zscrgan.files import check_new_folder, publish, staging_folder


# ---------------------------------------------------------------- reading inputs

def _is_hdf5(path):
    with open(path, "rb") as f:
        head = f.read(520)
    return head.startswith(b"MATLAB 7.3") or b"\x89HDF\r\n\x1a\n" in (head[:8], head[512:520])


def read_mat(path, required, optional=()):
    """The named variables of a MATLAB v5/v7 file: {name: array}. Raises DatasetError."""
    import scipy.io

    if not os.path.isfile(path):
        raise DatasetError(f"{path} not found")
    name = os.path.basename(path)
    if _is_hdf5(path):
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: re-save it as v7 "
            f"(MATLAB or Octave: load('{name}'); save('{name}', '-v7')) and run again")
    try:
        found = {v[0] for v in scipy.io.whosmat(path)}
        wanted = [v for v in (*required, *optional) if v in found]
        data = scipy.io.loadmat(path, variable_names=wanted) if wanted else {}
    except NotImplementedError:  # scipy's own v7.3 detection
        raise DatasetError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read: re-save it as v7")
    except Exception as e:
        raise DatasetError(f"{path} is not a readable MATLAB file ({type(e).__name__}: {e})")
    missing = [v for v in required if v not in data]
    if missing:
        has = ", ".join(sorted(found)) or "nothing"
        raise DatasetError(f"{path} has no variable '{missing[0]}' (it holds {has}): is it the right file?")
    return {k: data[k] for k in wanted}


def read_array(spec, what):
    """A numeric array from `.npy`, `.npz` (one array, or `FILE.npz:KEY`) or `.csv`."""
    path, key = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and head.lower().endswith(".npz"):
        path, key = head, tail
    if not os.path.isfile(path):
        raise DatasetError(f"{what}: {path} not found")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if key is None and len(z.files) != 1:
                    raise DatasetError(f"{what}: {path} holds arrays {z.files}: name one as {path}:KEY")
                key = z.files[0] if key is None else key
                if key not in z.files:
                    raise DatasetError(f"{what}: {path} has no array '{key}' (it holds {z.files})")
                arr = z[key]
        elif ext == ".csv":
            arr = _read_csv(path)
        else:
            raise DatasetError(f"{what}: {path} must be a .npy, .npz or .csv file")
    except DatasetError:
        raise
    except ValueError as e:
        raise DatasetError(f"{what}: {path} is not a plain numeric array ({e})")
    except Exception as e:
        raise DatasetError(f"{what}: cannot read {path} ({type(e).__name__}: {e})")
    if arr.dtype.kind not in "iuf":
        raise DatasetError(f"{what}: {spec} must hold numbers, got dtype {arr.dtype}")
    return arr


def _read_csv(path):
    """Comma-separated numbers, one row a line, with or without one header line."""
    try:
        return np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError:
        return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)


def _labels(arr, what):
    """Integer class labels, shape (n,), from a (n,), (n, 1) or (1, n) array."""
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise DatasetError(f"{what} must be a list of class labels, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise DatasetError(f"{what} must hold whole-number class labels")
    return arr.astype(np.int64)


def _matrix(arr, what):
    if arr.ndim != 2 or 0 in arr.shape:
        raise DatasetError(f"{what} must be a non-empty 2-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f"{what} holds NaN or infinite values")
    return arr


def id_list(text, what):
    """'3,7,9' -> [3, 7, 9]."""
    try:
        ids = [int(tok) for tok in text.split(",") if tok.strip()]
    except ValueError:
        raise DatasetError(f"{what} must be class ids separated by commas, like 3,7,9; got {text!r}")
    if not ids:
        raise DatasetError(f"{what} lists no class ids")
    return ids


def _group(rows, labels, ids):
    """{id: rows whose label is id, in file order}. rows (n, d), labels (n,)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    out = {}
    for c in ids:
        lo, hi = np.searchsorted(sorted_labels, [c, c + 1])
        out[int(c)] = np.asarray(rows[order[lo:hi]], np.float32)
    return out


# ---------------------------------------------------------------- converters

def convert_gbu(res101, att_splits, semantic="att", text_embeddings=None):
    """xlsa17 ("GBU", Xian et al. CVPR 2017) files -> (text, images, train_ids, test_ids,
    val_ids, notes).

    res101.mat: features (I, N) - columns are images; labels (N, 1), 1-based classes.
    att_splits.mat: att / original_att (A, C) - columns are classes; trainval_loc,
    test_seen_loc, test_unseen_loc - 1-based image indexes; val_loc, if present, the images
    of the split's validation classes (val_ids; None without it). Output class ids are label - 1.
    text_embeddings: optional .npz with `texts` (M, T) and `labels` (M,), 1-based like res101's.
    """
    r = read_mat(res101, ["features", "labels"])
    a = read_mat(att_splits, ["trainval_loc", "test_seen_loc", "test_unseen_loc"], ["att", "original_att", "val_loc"])
    rname, aname = os.path.basename(res101), os.path.basename(att_splits)
    if semantic not in a:
        other = "att" if semantic == "original_att" else "original_att"
        if other not in a:
            raise DatasetError(f"{att_splits} has neither att nor original_att: is it an xlsa17 att_splits.mat?")
        hint = " (FLO's files have only att, its 1024-d sentence embeddings)" if semantic == "original_att" else ""
        raise DatasetError(f"{att_splits} has no variable '{semantic}'{hint}: use --semantic {other}")
    features = _matrix(r["features"], f"{rname}: features")
    labels = _labels(r["labels"], f"{rname}: labels")
    sem = _matrix(a[semantic], f"{aname}: {semantic}")
    n_images, n_classes = features.shape[1], sem.shape[1]
    if len(labels) != n_images:
        raise DatasetError(f"{rname}: labels has {len(labels)} entries but features has {n_images} columns "
                           f"(features must be feature-dim x images, as in xlsa17)")
    bad = labels[(labels < 1) | (labels > n_classes)]
    if bad.size:
        raise DatasetError(f"{rname}: label {bad[0]} is outside 1..{n_classes} ({aname}'s {semantic} "
                           f"has {n_classes} columns, one per class)")

    seen, unseen = _gbu_splits(a, labels, n_images, aname, rname)

    used = np.concatenate([seen, unseen])
    images = _group(features.T, labels, used)
    if text_embeddings:
        text = _text_embeddings(text_embeddings, used, n_classes)
    else:
        text = {int(c): sem[:, c - 1][None, :].astype(np.float32) for c in used}
    shift = lambda d: {c - 1: v for c, v in d.items()}
    notes = []
    val_ids = _gbu_val_ids(a.get("val_loc"), labels, seen, aname, notes)
    dropped = int(np.sum(~np.isin(labels, used)))
    if dropped:
        k = np.unique(labels[~np.isin(labels, used)]).size
        notes.append(f"left out {dropped} images of {k} class{'es' if k > 1 else ''} in neither split")
    return (shift(text), shift(images), sorted(int(c) - 1 for c in seen), sorted(int(c) - 1 for c in unseen),
            val_ids, notes)


def _gbu_splits(a, labels, n_images, aname, rname):
    """(seen, unseen): the 1-based classes of att_splits' trainval_loc and test_unseen_loc images, checked."""
    locs = {}
    for name in ("trainval_loc", "test_seen_loc", "test_unseen_loc"):
        loc = _labels(np.asarray(a[name]).reshape(-1), f"{aname}: {name}") if np.size(a[name]) else np.zeros(0, np.int64)
        out = loc[(loc < 1) | (loc > n_images)]
        if out.size:
            raise DatasetError(f"{aname}: {name} holds image index {out[0]}, outside 1..{n_images} "
                               f"(the images of {rname}): are the two files from the same dataset?")
        locs[name] = loc - 1
    seen = np.unique(labels[locs["trainval_loc"]])
    unseen = np.unique(labels[locs["test_unseen_loc"]])
    for loc, classes, kind in (("trainval_loc", seen, "seen"), ("test_unseen_loc", unseen, "unseen")):
        if not classes.size:
            raise DatasetError(f"{aname}: {loc} is empty, so there are no {kind} classes")
    both = np.intersect1d(seen, unseen)
    if both.size:
        raise DatasetError(f"{aname}: classes {both[:10].tolist()} (1-based labels) are in both trainval_loc and "
                           f"test_unseen_loc; zero-shot needs disjoint seen and unseen classes")
    stray = np.setdiff1d(labels[locs["test_seen_loc"]], seen)
    if stray.size:
        raise DatasetError(f"{aname}: test_seen_loc holds images of class {stray[0]}, which is not a seen "
                           f"class (no image of it is in trainval_loc)")
    return seen, unseen


def _gbu_val_ids(val_loc, labels, seen, aname, notes):
    """The 0-based classes of val_loc's images (the split's validation classes), or None with a
    note when there is no usable val_loc: the dataset itself does not need it."""
    if val_loc is None or not np.size(val_loc):
        notes.append(f"{aname} has no val_loc: no {VALIDS} (validation classes) written")
        return None
    loc = np.asarray(val_loc).reshape(-1).astype(np.int64)
    if loc.min() < 1 or loc.max() > len(labels):
        notes.append(f"{aname}: val_loc holds image indexes outside 1..{len(labels)}: no {VALIDS} written")
        return None
    val_ids = sorted(int(c) - 1 for c in np.unique(labels[loc - 1]))
    try:
        check_val_ids(val_ids, sorted(int(c) - 1 for c in seen), "val_loc's classes (0-based)")
    except DatasetError as e:
        notes.append(f"{aname}: {e}: no {VALIDS} written")
        return None
    return val_ids


def _text_embeddings(path, used, n_classes):
    """{1-based class: (n_c, T)} from an .npz holding `texts` (M, T) and `labels` (M,)."""
    name = os.path.basename(path)
    texts = _matrix(read_array(f"{path}:texts", "--text-embeddings"), f"{name}: texts")
    labels = _labels(read_array(f"{path}:labels", "--text-embeddings"), f"{name}: labels")
    if len(labels) != len(texts):
        raise DatasetError(f"{name}: labels has {len(labels)} entries but texts has {len(texts)} rows")
    bad = labels[(labels < 1) | (labels > n_classes)]
    if bad.size:
        raise DatasetError(f"{name}: label {bad[0]} is outside 1..{n_classes} (labels are 1-based, as in res101.mat)")
    missing = np.setdiff1d(used, labels)
    if missing.size:
        raise DatasetError(f"{name}: class {missing[0]} (1-based) has no text embeddings; every seen and unseen class needs one")
    return _group(texts, labels, used)


def convert_arrays(images, image_labels, texts, text_labels, unseen, seen=None, val=None):
    """Feature arrays + label arrays -> (text, images, train_ids, test_ids, val_ids, notes).

    images (N, I) with image_labels (N,); texts (M, T) with text_labels (M,); class ids
    are kept as given. unseen, seen: lists of ids; seen defaults to every other class.
    val: optional seen classes to list as validation classes (valids.pkl).
    """
    x = _matrix(images, "--images")
    y = _labels(image_labels, "--image-labels")
    t = _matrix(texts, "--texts")
    tl = _labels(text_labels, "--text-labels")
    if len(y) != len(x):
        raise DatasetError(f"--image-labels has {len(y)} labels but --images has {len(x)} rows; they must match")
    if len(tl) != len(t):
        raise DatasetError(f"--text-labels has {len(tl)} labels but --texts has {len(t)} rows; they must match")
    all_ids = np.union1d(y, tl)
    seen_given = seen is not None
    if not seen_given:
        seen = [int(c) for c in all_ids if c not in set(unseen)]
    both = sorted(set(seen) & set(unseen))
    if both:
        raise DatasetError(f"classes {both[:10]} are in both --seen and --unseen; zero-shot needs them disjoint")
    if not seen:
        raise DatasetError("no seen classes are left: --unseen must leave some classes for training")
    has_img, has_txt = set(y.tolist()), set(tl.tolist())
    for c in [*seen, *unseen]:
        if c in has_img and c in has_txt:
            continue
        if c not in has_img and c not in has_txt:
            raise DatasetError(f"{'--unseen' if c in unseen else '--seen'} lists class {c}, which has "
                               f"no images and no texts in the label files")
        has, lacks = ("texts", "images") if c not in has_img else ("images", "texts")
        way = "take it out of --unseen" if c in unseen else "leave it out with --seen"
        raise DatasetError(f"class {c} has {has} but no {lacks}: every class needs both; add some or {way}")
    if val is not None:
        check_val_ids(val, seen, "--val")
    used = sorted(set(seen) | set(unseen))
    notes = []
    dropped = [int(c) for c in all_ids if c not in set(used)]
    if dropped:
        notes.append(f"left out classes {dropped[:10]}{' ...' if len(dropped) > 10 else ''} (in neither --seen nor --unseen)")
    return _group(t, tl, used), _group(x, y, used), sorted(seen), sorted(unseen), val, notes


# ---------------------------------------------------------------- writing

def check_out(out, force):
    """Refuse an --out that holds anything but (with --force) a dataset folder."""
    if force:
        check_new_folder(out, ignore=FILES + (VALIDS,), way="--force replaces only a dataset folder (its "
                         "four pickles and valids.pkl): choose another folder")
    else:
        check_new_folder(out, way="choose another folder, or pass --force to replace the dataset in it")


def write_dataset(out, text, images, train_ids, test_ids, force=False, val_ids=None):
    """Write a validated dataset folder at `out`, through its staging folder. Returns the loaded Dataset."""
    validate(text, images, train_ids, test_ids)
    if val_ids is not None:
        check_val_ids(val_ids, train_ids, VALIDS)
    check_out(out, force)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    staging = staging_folder(out)
    try:
        save_dataset(staging, text, images, train_ids, test_ids, val_ids)
        try:
            dataset = load_dataset(staging)
            load_val_ids(staging, dataset.train_ids)
        except DatasetError as e:
            raise DatasetError(str(e).replace(staging, out))
        publish(staging, out, replace=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    dataset.name = os.path.basename(os.path.abspath(out))
    return dataset


# ---------------------------------------------------------------- summary and check

def _spread(counts):
    return f"{min(counts)}/{np.mean(counts):.1f}/{max(counts)}"


def summary(dataset, path, val_ids=None):
    """A table of what the folder holds: classes, split, counts, dimensions, value ranges,
    validation classes, warnings."""
    rows = [("", "seen (train)", "unseen (test)")]
    split = (dataset.train_ids, dataset.test_ids)
    rows.append(("classes", *(str(len(ids)) for ids in split)))
    for label, d in (("texts", dataset.text), ("images", dataset.images)):
        counts = [[len(d[c]) for c in ids] for ids in split]
        rows.append((label, *(str(sum(n)) for n in counts)))
        rows.append(("  per class (min/mean/max)", *(_spread(n) for n in counts)))
    width = max(len(r[0]) for r in rows)
    lines = [path] + [f"  {r[0]:<{width}}{r[1]:>16}{r[2]:>16}" for r in rows]
    for label, d in (("text", dataset.text), ("image", dataset.images)):
        stack = np.concatenate(list(d.values()))
        lines.append(f"  {label:<6} {stack.shape[1]}-d, values in [{stack.min():.4g}, {stack.max():.4g}], "
                     f"mean {stack.mean():.4g}")
    if val_ids:
        lines.append(f"  validation classes ({VALIDS}): {len(val_ids)} of the seen classes, {val_ids[:20]}"
                     f"{' ...' if len(val_ids) > 20 else ''}")
    found = dataset_warnings(dataset, defaults()["top_k"])
    lines.append("  warnings: " + ("none" if not found else f"{len(found)}"))
    lines += [f"    - {w}" for w in found]
    return "\n".join(lines)
