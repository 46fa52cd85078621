"""Classic baselines for the same zero-shot text-to-image retrieval, next to ZSCRGAN and chance.

Both baselines are fitted on the seen classes only and evaluated exactly like ZSCRGAN
(docs/algorithm.md §7): every unseen text queries the gallery of every unseen image, ranked by
cosine similarity (ties to the lower gallery index), macro Prec@K and mAP@K.
- ridge: linear regression from text to image features; query = ridge(text), gallery = images,
  both centred on the seen images' mean.
- CCA: canonical correlation analysis of (text, image) pairs; both sides projected into the
  common space, query = CCA_text(text), gallery = CCA_image(image).
Training pairs: each seen class pairs its texts with its images at random, since texts
describe a class, not one image (see training_pairs).
"""
import collections
import warnings

import numpy as np
from sklearn.cross_decomposition import CCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from zscrgan.data.dataset import eval_split
from zscrgan.model.metrics import map_at_k, n_relevant, prec_at_k

CCA_DIM_CAP = 16  # sklearn's CCA costs two pseudo-inverses and up to 500 iterations per component
# One line of the comparison: key "ridge", "cca" or "chance"; method: its label; Prec@K, mAP@K or None; a note.
Row = collections.namedtuple("Row", "key method prec map note")


def training_pairs(dataset, max_pairs, rng):
    """(texts (P, T), images (P, I)) of random (text, image) pairs of the seen classes.

    A class's texts describe the class, not one image, so any text of a class pairs with
    any of its images. Each class gets an equal share of `max_pairs` (evaluation averages
    over classes), drawn without replacement from its texts x images; single texts as
    queries are what evaluation uses, so texts are not averaged.
    """
    per_class = max(1, max_pairs // len(dataset.train_ids))
    texts, images = [], []
    for c in dataset.train_ids:
        n_t, n_i = len(dataset.text[c]), len(dataset.images[c])
        pick = rng.choice(n_t * n_i, size=min(per_class, n_t * n_i), replace=False)
        texts.append(dataset.text[c][pick // n_i])
        images.append(dataset.images[c][pick % n_i])
    return np.concatenate(texts), np.concatenate(images)


def retrieve(queries, gallery, gallery_labels, k, chunk=1024):
    """Class labels (Q, min(k, N)) of each query's top-k gallery rows by cosine, as the evaluation ranks."""
    from zscrgan.model.ranking import l2_normalize, top_k_indices  # TensorFlow: not for --help or bad input
    q, g = l2_normalize(np.asarray(queries, np.float32)), l2_normalize(np.asarray(gallery, np.float32))
    return gallery_labels[top_k_indices(q, g, k, chunk)]


def scores(query_labels, retrieved, n_relevant):
    """(Prec@K, mAP@K) of retrieved labels (Q, K')."""
    return prec_at_k(query_labels, retrieved), map_at_k(query_labels, retrieved, n_relevant)


def ridge_embeddings(pairs, texts, images, alpha):
    """(queries (Q, I), gallery (N, I)): ridge(text) and the images, both minus the seen images' mean.

    Image features are often all positive (pixels, ReLU activations), so uncentred cosines
    are dominated by the shared mean and hardly rank; the mean is a training statistic.
    """
    model = Ridge(alpha=alpha).fit(pairs[0], pairs[1])
    mean = pairs[1].mean(axis=0)
    return model.predict(texts) - mean, images - mean


def cca_dim(requested, n_seen, text_dim, image_dim, n_pairs):
    """Components: requested, or n_seen - 1 (capped), never above min(T, I, pairs - 1).

    With class-level pairs, text and image correlate only through the class means, whose
    cross-covariance has rank at most n_seen - 1: further components would fit noise.
    """
    dim = requested if requested else min(n_seen - 1, CCA_DIM_CAP)
    return max(1, min(dim, text_dim, image_dim, n_pairs - 1))


def cca_embeddings(pairs, texts, images, n_components):
    """(queries (Q, D), gallery (N, D)): test texts and images in the common space of a CCA fitted on the pairs."""
    model = CCA(n_components=n_components)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(pairs[0], pairs[1])
    queries = model.transform(texts)
    # transform() projects images only next to texts; the text rows here are placeholders.
    _, gallery = model.transform(np.zeros((len(images), pairs[0].shape[1]), np.float32), images)
    return queries, gallery


def chance(gallery_labels, query_labels, k):
    """(Prec@K, mAP@K) expected from a uniformly random ranking of the gallery.

    Prec@K: mean over query classes of n_c / N. mAP@K, per query (R relevant of N, K' = min(K, N)):
    E[AP@K] = sum_{i<=K'} (R/N + (i-1) R(R-1) / (N(N-1))) / i / min(K', R).
    """
    ids, counts = np.unique(gallery_labels, return_counts=True)
    n = len(gallery_labels)
    n_c = dict(zip(ids.tolist(), counts.tolist()))
    prec = float(np.mean([n_c[c] / n for c in np.unique(query_labels).tolist()]))
    k = min(k, n)
    i = np.arange(1, k + 1)
    both = {c: r * (r - 1) / (n * (n - 1)) if n > 1 else 0.0 for c, r in n_c.items()}
    ap = {c: np.sum((r / n + (i - 1) * both[c]) / i) / min(k, r) for c, r in n_c.items()}
    return prec, float(np.mean([ap[c] for c in np.asarray(query_labels).tolist()]))


def compare(dataset, k=50, seed=0, alpha=1.0, cca_components=None, max_pairs=2000):
    """The baselines on the dataset's unseen split: (header lines, [Row for ridge, CCA, chance])."""
    rng = np.random.default_rng(seed)
    texts, q_labels, images, g_labels = eval_split(dataset)
    relevant = n_relevant(q_labels, g_labels)
    pairs = training_pairs(dataset, max_pairs, rng)
    n_pairs = len(pairs[0])
    dim = cca_dim(cca_components, len(dataset.train_ids), dataset.text_dim, dataset.image_dim, n_pairs)

    def scored(queries, gallery):
        return scores(q_labels, retrieve(queries, gallery, g_labels, k), relevant)

    rows = [Row("ridge", f"ridge text->image (alpha {alpha:g})", *scored(*ridge_embeddings(pairs, texts, images, alpha)), "")]
    try:
        rows.append(Row("cca", f"CCA ({dim} components)", *scored(*cca_embeddings(pairs, texts, images, dim)), ""))
    except np.linalg.LinAlgError as e:  # LAPACK's SVD occasionally fails on the deflated matrices
        rows.append(Row("cca", f"CCA ({dim} components)", None, None, f"failed ({e}): try another --seed or --max_pairs"))
    rows.append(Row("chance", "chance (random ranking)", *chance(g_labels, q_labels, k), "expected value"))
    header = (f"{dataset.name}: {len(dataset.train_ids)} seen / {len(dataset.test_ids)} unseen classes, "
              f"{len(q_labels)} queries, gallery of {len(g_labels)} images, K = {min(k, len(g_labels))}\n"
              f"baselines fitted on {n_pairs} (text, image) pairs of the seen classes, seed {seed}")
    return header, rows
