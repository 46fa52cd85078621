"""Ranking a gallery by cosine similarity (docs/algorithm.md §7.2, §11.4): the one rule, best
first and ties to the lower gallery row, in every path.

- `l2_normalize`: the common space's normalisation, row-wise, for the losses, the embeddings
  and any mean of embeddings (TensorFlow; NumPy arrays come back as NumPy).
- `rank`: the trainer's ranking (TensorFlow, float32): a running top-k merged block by block,
  so memory does not grow with the gallery; `tf.math.top_k` prefers the earlier position and
  earlier positions hold earlier rows, which keeps the tie rule across blocks.
- `brute_force`, `search`: ranking outside the trainer (`retrieve`), in NumPy or through a
  FAISS index, returning (rows (Q, k), scores (Q, k)). Scores are `score`'s: float64 sums of
  elementwise products, one row at a time, so a (query, image) pair gets the same float
  wherever the image sits (a BLAS matmul may round the same pair differently at different
  positions, and duplicates would not tie). An exact index returns the brute-force ranking:
  FAISS's float32 candidates are widened past any tie at the k-th place, re-scored by `score`
  and ordered by `best_first`. `approximate` indexes are HNSW graphs, re-scored the same way.
"""
import numpy as np
import tensorflow as tf

BLOCK = 1 << 22  # float64 products held at once by brute force
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
TIE = 1e-5  # float32 scores closer than this to the k-th may be a tie in float64


def l2_normalize(x):
    """x / sqrt(max(sum x^2, 1e-12)) along the last axis (the reference's tf.nn.l2_normalize).

    x: a tensor, or a NumPy array (the result is then NumPy, in x's dtype)."""
    out = x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x), -1, keepdims=True), 1e-12))
    return out.numpy() if isinstance(x, np.ndarray) else out


# --------------------------------------------------------------------------- the trainer's


def rank(queries, gallery_chunks, k):
    """Indices (Q, min(k, N)) of each query's best gallery rows by dot product, best first.

    queries (Q, E); gallery_chunks: the gallery's (N_i, E) row blocks, in gallery order. The
    memory beyond the inputs is Q x (N_i + k) scores whatever the gallery size.
    """
    best_scores = best_idx = None
    offset = 0
    for block in gallery_chunks:
        n = int(block.shape[0])
        top = tf.math.top_k(tf.matmul(queries, block, transpose_b=True), k=min(k, n))
        scores, idx = top.values, top.indices + offset
        if best_scores is not None:
            scores, idx = tf.concat([best_scores, scores], 1), tf.concat([best_idx, idx], 1)
            top = tf.math.top_k(scores, k=min(k, int(scores.shape[1])))
            scores, idx = top.values, tf.gather(idx, top.indices, batch_dims=1)
        best_scores, best_idx, offset = scores, idx, offset + n
    return best_idx.numpy()


def top_k_indices(queries, gallery, k, chunk):
    """`rank` over a gallery tensor (N, E) taken `chunk` rows at a time."""
    n = int(gallery.shape[0])
    return rank(queries, (gallery[i:i + chunk] for i in range(0, n, chunk)), k)


# --------------------------------------------------------------------------- outside the trainer


def score(queries, vectors):
    """Dot products in float64: queries (Q, E) with vectors (Q, C, E) or (1, C, E) -> (Q, C)."""
    return np.sum(np.asarray(queries, np.float64)[:, None, :] * np.asarray(vectors, np.float64), axis=-1)


def best_first(rows, scores, k):
    """The k best of candidate rows (Q, C) with their scores (Q, C): by score, descending, then
    by row, ascending. Returns (rows (Q, k), scores (Q, k))."""
    order = np.lexsort((rows, -scores), axis=-1)[:, :k]
    return np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)


def brute_force(queries, gallery, k):
    """queries (Q, E), gallery (N, E) -> (rows (Q, k), scores (Q, k)), k <= N."""
    g = np.asarray(gallery)[None]
    step = max(1, BLOCK // g.size)
    rows, scores = [], []
    for i in range(0, len(queries), step):
        s = score(queries[i:i + step], g)
        r, s = best_first(np.broadcast_to(np.arange(g.shape[1]), s.shape), s, k)
        rows.append(r)
        scores.append(s)
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
    """queries (Q, E) against a FAISS index -> (rows (Q, k), scores (Q, k)) as the module doc says."""
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
    """Re-score candidate rows (Q, C) with `score` and keep the `best_first` k."""
    valid = cand >= 0
    vectors = index.reconstruct_batch(np.where(valid, cand, 0).ravel()).reshape(*cand.shape, -1)
    scores = score(queries, vectors)
    scores[~valid] = -np.inf
    return best_first(cand, scores, k)
