"""Ranking a gallery of embeddings for each query (docs/algorithm.md §11.4): brute force in
NumPy, or a FAISS index built once and reused.

Every path returns (rows (Q, k), scores (Q, k)): gallery rows best first by the dot product
of L2-normalised embeddings (cosine similarity), ties to the lower row, the trainer's rule
(§7.2). Scores are `score`'s: float64 sums of elementwise products, one row at a time, so a
(query, image) pair gets the same float wherever the image sits (a BLAS matmul may round
the same pair differently at different positions, and duplicates would not tie). An exact
index returns the brute-force ranking: FAISS's float32 candidates are widened past any tie
at the k-th place, re-scored by `score` and sorted stably. `--approximate` uses an HNSW graph, whose candidates are re-scored the same way.
"""
import numpy as np

from zscrgan.errors import BadInput

BLOCK = 1 << 22  # float64 products held at once by brute force
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
TIE = 1e-5  # float32 scores closer than this to the k-th may be a tie in float64


class IndexFileError(BadInput):
    """An index file that is not one, or that another model wrote."""


def score(queries, vectors):
    """Dot products in float64: queries (Q, E) with vectors (Q, C, E) or (1, C, E) -> (Q, C)."""
    return np.sum(np.asarray(queries, np.float64)[:, None, :] * np.asarray(vectors, np.float64), axis=-1)


def brute_force(queries, gallery, k):
    """queries (Q, E), gallery (N, E) -> (rows (Q, k), scores (Q, k)), k <= N."""
    g = np.asarray(gallery)[None]
    step = max(1, BLOCK // g.size)
    rows, scores = [], []
    for i in range(0, len(queries), step):
        s = score(queries[i:i + step], g)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        rows.append(top)
        scores.append(np.take_along_axis(s, top, 1))
    return np.concatenate(rows), np.concatenate(scores)


def build_index(gallery, approximate=False):
    """A FAISS inner-product index over gallery (N, E): flat (exact) or HNSW."""
    import faiss
    x = np.ascontiguousarray(gallery, np.float32)
    if approximate:
        index = faiss.IndexHNSWFlat(x.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index


def is_exact(index):
    import faiss
    return isinstance(index, faiss.IndexFlat)


def search(index, queries, k):
    """queries (Q, E) against a FAISS index -> (rows (Q, k), scores (Q, k)) as module doc says."""
    import faiss
    q = np.ascontiguousarray(queries, np.float32)
    if not is_exact(index):
        faiss.downcast_index(index).hnsw.efSearch = max(HNSW_EF_SEARCH, k)
        return _rerank(index, q, index.search(q, k)[1], k)
    n, wide = index.ntotal, min(index.ntotal, k + 16)
    while True:
        scores, cand = index.search(q, wide)
        if wide == n or np.all(scores[:, k - 1] - scores[:, wide - 1] > TIE):
            return _rerank(index, q, cand, k)
        wide = min(n, 2 * wide)


def _rerank(index, queries, cand, k):
    """Re-score candidate rows (Q, C) with `score` and sort them by (score desc, row asc)."""
    valid = cand >= 0
    vectors = index.reconstruct_batch(np.where(valid, cand, 0).ravel()).reshape(*cand.shape, -1)
    scores = score(queries, vectors)
    scores[~valid] = -np.inf
    order = np.lexsort((cand, -scores), axis=-1)[:, :k]
    return np.take_along_axis(cand, order, 1), np.take_along_axis(scores, order, 1)


def save_index(path, index, labels, model_id):
    """One .npz file: the serialised index, gallery classes (N,) (-1: unknown) and the model's id."""
    import faiss
    with open(path, "wb") as f:
        np.savez(f, faiss=faiss.serialize_index(index), labels=np.asarray(labels, np.int64),
                 model=np.array(model_id))


def load_index(path, model_id, embed_dim):
    """(index, gallery labels (N,) with -1 for unknown) from `save_index`'s file, checked."""
    import faiss
    try:
        with np.load(path, allow_pickle=False) as f:
            blob, labels, model = f["faiss"], f["labels"], str(f["model"])
    except (OSError, ValueError, KeyError) as e:
        raise IndexFileError(f"--index {path} is not an index that `retrieve --save_index` wrote ({e})")
    if model != model_id:
        raise IndexFileError(f"--index {path} was built with another model ({model}); rebuild it with "
                          "--save_index and this MODEL_DIR")
    index = faiss.deserialize_index(blob)
    if index.d != embed_dim or index.ntotal != len(labels):
        raise IndexFileError(f"--index {path} holds {index.ntotal} vectors of width {index.d}, not this model's")
    return index, labels
