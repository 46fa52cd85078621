"""The metrics of docs/algorithm.md §7.3 and the retrieval dump's records (§7.4), in NumPy.

Shapes: Q queries, K' retrieved per query. No TensorFlow, so tools that only read dumps and
histories start fast.
"""
import numpy as np


def prec_at_k(query_labels, retrieved_labels):
    """Macro Prec@K: mean over query classes of hits / (K' x queries of the class).

    query_labels (Q,), retrieved_labels (Q, K'). Classes are averaged in sorted order so
    the same inputs always give the same float.
    """
    query_labels = np.asarray(query_labels)
    retrieved_labels = np.asarray(retrieved_labels)
    hits = (retrieved_labels == query_labels[:, None]).sum(axis=1)
    k = retrieved_labels.shape[1]
    per_class = [hits[query_labels == c].sum() / (k * np.sum(query_labels == c))
                 for c in np.unique(query_labels)]
    return float(np.mean(per_class))


def map_at_k(query_labels, retrieved_labels, n_relevant):
    """mAP@K: mean over queries of AP@K = sum_i P@i * rel_i / min(K', R_q).

    query_labels (Q,), retrieved_labels (Q, K'), n_relevant (Q,): gallery images of each
    query's class (R_q).
    """
    rel = (np.asarray(retrieved_labels) == np.asarray(query_labels)[:, None]).astype(np.float64)
    if rel.shape[0] == 0:
        return 0.0
    k = rel.shape[1]
    precision_at_i = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    ap = (precision_at_i * rel).sum(axis=1) / np.minimum(k, np.asarray(n_relevant))
    return float(np.mean(ap))


def n_relevant(query_labels, gallery_labels):
    """R_q (Q,): the gallery images of each query's class; query_labels (Q,), gallery_labels (N,)."""
    classes, counts = np.unique(gallery_labels, return_counts=True)
    return counts[np.searchsorted(classes, query_labels)]


def dump_records(query_labels, retrieved_labels):
    """The reference's dump: [{query class id: [K retrieved class ids, best first]}, ...]."""
    return [{int(q): [int(r) for r in row]} for q, row in zip(query_labels, retrieved_labels)]


def record_arrays(records):
    """(query labels (Q,), retrieved labels (Q, K)) of a dump's records."""
    query = np.array([next(iter(r)) for r in records], np.int64)
    retrieved = np.array([next(iter(r.values())) for r in records], np.int64)
    return query, retrieved


def prec_from_records(records):
    """Recompute macro Prec@K from a dump's records."""
    return prec_at_k(*record_arrays(records))
