"""Validation classes (docs/algorithm.md §11.2): which seen classes a run holds out.

The reference evaluates the unseen (test) classes after every round and keeps the best
round: its figure is a maximum over many test evaluations. A run may instead hold out some
seen classes as validation classes, never trained on, and choose the round on them. This
module resolves the `val_classes` key against a dataset and splits the training classes;
the rule that picks the round is `results.history.best_row`.
"""
import dataclasses

import numpy as np

from zscrgan.config import VAL_FILE, ConfigError
from zscrgan.data.dataset import VALIDS, DatasetError, check_val_ids, load_val_ids


def resolve_val_ids(cfg, dataset, folder):
    """The validation class ids (a list) that `cfg.val_classes` asks for, or None.

    N: N seen classes drawn with NumPy from `cfg.seed` (the TensorFlow generator is left
    alone), sorted; a list: those ids, checked; 'file': `<folder>/valids.pkl`.
    Raises ConfigError or DatasetError.
    """
    val, seen = cfg.val_classes, dataset.train_ids
    if val is None:
        return None
    if val == VAL_FILE:
        ids = load_val_ids(folder, seen)
        if ids is None:
            raise DatasetError(f"val_classes = {VAL_FILE}, but {folder} has no {VALIDS} (prepare gbu writes it "
                               "from xlsa17's validation classes, prepare arrays with --val; or give the "
                               "number of classes or their ids)")
        return ids
    if isinstance(val, int):
        if val > len(seen) - 2:
            raise ConfigError(f"val_classes = {val} is too many: {dataset.name} has {len(seen)} seen classes "
                              f"and at least 2 must stay for training (at most {max(len(seen) - 2, 0)})")
        chosen = np.random.default_rng(cfg.seed).choice(seen, val, replace=False)
        return sorted(int(c) for c in chosen)
    try:
        check_val_ids(val, seen, f"val_classes = {val}")
    except DatasetError as e:
        raise ConfigError(str(e))
    return list(val)


def training_split(dataset, val_ids):
    """The dataset the batch sampler draws from: the seen classes without the validation ones."""
    if not val_ids:
        return dataset
    return dataclasses.replace(dataset, train_ids=[c for c in dataset.train_ids if c not in set(val_ids)])


def gallery_note(dataset, val_ids, k):
    """A warning when the validation gallery is smaller than K, else None."""
    n = sum(len(dataset.images[c]) for c in val_ids or ())
    if val_ids and n < k:
        return f"the validation gallery has {n} images, fewer than K = {k}: val Prec@{k} uses K' = {n}"
    return None
