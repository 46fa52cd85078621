"""Evaluation (docs/algorithm.md §7): rank the unseen gallery for every unseen text, Prec@K.

Queries and gallery: `data.dataset.eval_split` (every text and every image of the test classes,
in each dict's stored key order). Ranking: `ranking.rank`.
"""
import tensorflow as tf

from zscrgan.data.dataset import eval_split
from zscrgan.model.metrics import dump_records, map_at_k, n_relevant, prec_at_k
from zscrgan.model.ranking import l2_normalize, rank


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

    def blocks(self, rows):
        """The slices of `rows` (a tensor) that one pass takes: `chunk` rows each, in order."""
        return (slice(i, i + self.chunk) for i in range(0, int(rows.shape[0]), self.chunk))

    def embed_queries(self):
        """Every query's embedding (Q, E), one block per pass, each with fresh noise."""
        return tf.concat([self._embed_queries(self.texts[b]) for b in self.blocks(self.texts)], 0)

    def query_noise(self, rng):
        """(eps (Q, E), z (Q, Z)): the noise `embed_queries` would give its queries if the run's
        generator were in `rng`'s state (rng is advanced), block by block."""
        draws = [query_noise(rng, self.texts[b].shape[0], self.embed_dim, self.z_dim) for b in self.blocks(self.texts)]
        return tf.concat([eps for eps, _ in draws], 0), tf.concat([z for _, z in draws], 0)

    def gallery_blocks(self):
        """The gallery's embeddings, `chunk` rows at a time: (chunk, E) blocks in gallery order."""
        return (self._embed_gallery(self.images[b]) for b in self.blocks(self.images))

    def evaluate(self):
        """Returns ({prec_at_<k>, map_at_<K>}, records of the K dump).

        The dump's score is metrics[f"prec_at_{K}"], K = self.k.
        """
        retrieved = self.gallery_labels[rank(self.embed_queries(), self.gallery_blocks(), self.ks[-1])]
        metrics = {f"prec_at_{k}": prec_at_k(self.query_labels, retrieved[:, :k]) for k in self.ks}
        top = retrieved[:, :self.k]
        metrics[f"map_at_{self.k}"] = map_at_k(self.query_labels, top, self.n_relevant)
        return metrics, dump_records(self.query_labels, top)
