"""Evaluation (docs/algorithm.md §7): rank the unseen gallery for every unseen text, Prec@K.

Queries: every text of every test class, classes in `txt_embed_dict`'s stored key order (not
`testids.pkl`'s), each class's texts in file order; gallery: every image of every test class,
classes in `image_embed_dict`'s stored key order. Ranking is by cosine similarity, best
first, ties to the lower gallery index (what `tf.math.top_k` does).
"""

import numpy as np
import tensorflow as tf


def eval_split(dataset, ids=None):
    """Stack the test split: (texts (Q, T), query labels (Q,), images (N, I), gallery labels (N,)).

    Classes come in each dict's stored key order, as the reference iterates them (docs/algorithm.md §7).
    ids: other classes to stack the same way (the validation classes, docs/algorithm.md §11.2).
    """
    wanted = set(dataset.test_ids if ids is None else ids)
    q_ids = [c for c in dataset.text if c in wanted]
    g_ids = [c for c in dataset.images if c in wanted]
    texts = np.concatenate([dataset.text[c] for c in q_ids])
    q_labels = np.concatenate([np.full(len(dataset.text[c]), c, np.int64) for c in q_ids])
    images = np.concatenate([dataset.images[c] for c in g_ids])
    g_labels = np.concatenate([np.full(len(dataset.images[c]), c, np.int64) for c in g_ids])
    return texts, q_labels, images, g_labels


def l2_normalize(x):
    """x / sqrt(max(sum x^2, 1e-12)) along the last axis (the reference's tf.nn.l2_normalize)."""
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x), -1, keepdims=True), 1e-12))


def rank(queries, gallery_chunks, k):
    """Indices (Q, min(k, N)) of each query's best gallery rows by dot product, best first.

    queries (Q, E); gallery_chunks: the gallery's (N_i, E) row blocks, in gallery order.
    A running top-k is merged with each block's, so the memory beyond the inputs is
    Q x (N_i + k) scores whatever the gallery size. Ties go to the lower gallery index:
    `top_k` prefers the earlier position, and earlier positions hold earlier rows.
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


def query_noise(rng, n, embed_dim, z_dim):
    """A query's noise (docs/algorithm.md §7.1), drawn from the tf.random.Generator rng in this
    order: eps (n, E) truncated normal, then z (n, Z) standard normal."""
    return rng.truncated_normal([n, embed_dim]), rng.normal([n, z_dim])


def embed_texts(nets, t, eps, z):
    """The query path: l2n(F(G(c, z))), c = mu + exp(log_sigma) * eps from CA (docs/algorithm.md §7.1).

    nets: anything with `generator` and `csem`; t (n, T), eps (n, E), z (n, Z) -> (n, E).
    """
    c, _, _ = nets.generator.condition(t, eps)
    return l2_normalize(nets.csem(nets.generator(c, z)))


def embed_images(nets, v):
    """The gallery path: l2n(F(v)); v (n, I) -> (n, E)."""
    return l2_normalize(nets.csem(v))


def n_relevant(query_labels, gallery_labels):
    """R_q (Q,): the gallery images of each query's class; query_labels (Q,), gallery_labels (N,)."""
    classes, counts = np.unique(gallery_labels, return_counts=True)
    return counts[np.searchsorted(classes, query_labels)]


def dump_records(query_labels, retrieved_labels):
    """The reference's dump: [{query class id: [K retrieved class ids, best first]}, ...]."""
    return [{int(q): [int(r) for r in row]} for q, row in zip(query_labels, retrieved_labels)]


def prec_from_records(records):
    """Recompute macro Prec@K from a dump's records."""
    query_labels = [next(iter(r)) for r in records]
    retrieved = [next(iter(r.values())) for r in records]
    return prec_at_k(query_labels, retrieved)


class Evaluator:
    """Evaluates the current networks on a dataset's unseen split.

    Holds the split as device tensors and compiled embedding functions, so a round's
    evaluation is a few compiled calls and one chunked ranking. `chunk` bounds both the
    rows per network pass and the gallery block: memory beyond the inputs is about
    Q x chunk scores.
    """

    def __init__(self, dataset, nets, rng, k=50, eval_ks=(), chunk=1024):
        """dataset: a Dataset, or an unseen split as `eval_split` returns it (texts (Q, T),
        query labels (Q,), images (N, I), gallery labels (N,)); texts and images may be tensors."""
        split = dataset if isinstance(dataset, tuple) else eval_split(dataset)
        texts, self.query_labels, images, self.gallery_labels = split
        self.texts = tf.convert_to_tensor(texts, tf.float32)
        self.images = tf.convert_to_tensor(images, tf.float32)
        self.nets, self.rng, self.k, self.chunk = nets, rng, k, chunk
        self.ks = sorted({k, *eval_ks})
        self.n_relevant = n_relevant(self.query_labels, self.gallery_labels)
        self.embed_dim, self.z_dim = nets.generator.embed_dim, nets.generator.z_dim

    @tf.function(autograph=False)  # nothing to convert; converting was most of the first evaluation
    def _embed_queries(self, t):
        """Texts t (n, T) embedded with fresh noise from the run's generator (docs/algorithm.md §7)."""
        eps, z = query_noise(self.rng, tf.shape(t)[0], self.embed_dim, self.z_dim)
        return embed_texts(self.nets, t, eps, z)

    @tf.function(autograph=False)
    def _embed_gallery(self, v):
        return embed_images(self.nets, v)

    def embed_queries(self):
        """Every query's embedding (Q, E), `chunk` rows per pass."""
        c = self.chunk
        return tf.concat([self._embed_queries(self.texts[i:i + c])
                          for i in range(0, int(self.texts.shape[0]), c)], 0)

    def gallery_blocks(self):
        """The gallery's embeddings, `chunk` rows at a time: (chunk, E) blocks in gallery order."""
        c = self.chunk
        return (self._embed_gallery(self.images[i:i + c]) for i in range(0, int(self.images.shape[0]), c))

    def evaluate(self):
        """Returns ({prec_at_<k>, map_at_<K>}, records of the K dump).

        The dump's score is metrics[f"prec_at_{K}"], K = self.k.
        """
        retrieved = self.gallery_labels[rank(self.embed_queries(), self.gallery_blocks(), self.ks[-1])]
        metrics = {f"prec_at_{k}": prec_at_k(self.query_labels, retrieved[:, :k]) for k in self.ks}
        top = retrieved[:, :self.k]
        metrics[f"map_at_{self.k}"] = map_at_k(self.query_labels, top, self.n_relevant)
        return metrics, dump_records(self.query_labels, top)
