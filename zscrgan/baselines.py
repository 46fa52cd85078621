"""Classic baselines for the same zero-shot text-to-image retrieval, next to ZSCRGAN and chance.

    python -m zscrgan baselines --dataset NAME [--run_name NAME] [--datasets_dir DIR] [--results_dir DIR]
                                [--logs_dir DIR] [--k K] [--seed 0] [--alpha 1.0] [--cca_dim D] [--max_pairs 2000]

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
import os
import warnings

import numpy as np
from sklearn.cross_decomposition import CCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from zscrgan import cli
from zscrgan.data import dataset_folder, load_dataset
from zscrgan.results import ResultsError, Run, default, dump_arrays, load_dump

CCA_DIM_CAP = 16  # sklearn's CCA costs two pseudo-inverses and up to 500 iterations per component


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
    from zscrgan import evaluation as ev  # TensorFlow: imported when first needed, not for --help or bad input
    q, g = ev.l2_normalize(np.asarray(queries, np.float32)), ev.l2_normalize(np.asarray(gallery, np.float32))
    return gallery_labels[ev.top_k_indices(q, g, k, chunk)]


def scores(query_labels, retrieved, n_relevant):
    """(Prec@K, mAP@K) of retrieved labels (Q, K')."""
    from zscrgan import evaluation as ev
    return ev.prec_at_k(query_labels, retrieved), ev.map_at_k(query_labels, retrieved, n_relevant)


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


def zscrgan_row(path, query_labels, n_relevant, k):
    """(Prec@K, mAP@K, note) of a dump, recomputed at K = min(K, gallery size).

    A best-first list's prefix is its top-K, so a dump of the top 50 also gives Prec@10.
    """
    try:
        q, retrieved = dump_arrays(load_dump(path))
    except ResultsError as e:
        return None, None, f"unreadable: {e}"
    if not np.array_equal(q, query_labels):
        return None, None, f"{os.path.basename(path)}: its queries are not this dataset's unseen texts"
    if k > retrieved.shape[1]:
        return None, None, f"{os.path.basename(path)} holds only the top {retrieved.shape[1]}"
    return (*scores(query_labels, retrieved[:, :k], n_relevant), os.path.basename(path))


def run(dataset, zscrgan_run=None, k=50, seed=0, alpha=1.0, cca_components=None, max_pairs=2000):
    """The comparison: a header line and rows (method, Prec@K or None, mAP@K or None, note).

    The ZSCRGAN row re-scores the selected dump of `zscrgan_run` (a results.Run); with None
    there is no ZSCRGAN row.
    """
    rng = np.random.default_rng(seed)
    from zscrgan import evaluation as ev
    texts, q_labels, images, g_labels = ev.eval_split(dataset)
    n_relevant = ev.n_relevant(q_labels, g_labels)
    pairs = training_pairs(dataset, max_pairs, rng)
    n_pairs = len(pairs[0])
    dim = cca_dim(cca_components, len(dataset.train_ids), dataset.text_dim, dataset.image_dim, n_pairs)

    def scored(queries, gallery):
        return scores(q_labels, retrieve(queries, gallery, g_labels, k), n_relevant)

    rows = [(f"ridge text->image (alpha {alpha:g})", *scored(*ridge_embeddings(pairs, texts, images, alpha)), "")]
    try:
        rows.append((f"CCA ({dim} components)", *scored(*cca_embeddings(pairs, texts, images, dim)), ""))
    except np.linalg.LinAlgError as e:  # LAPACK's SVD occasionally fails on the deflated matrices
        rows.append((f"CCA ({dim} components)", None, None, f"failed ({e}): try another --seed or --max_pairs"))
    if zscrgan_run is not None:
        path = zscrgan_run.selected_dump()
        if path is None:
            rows.append(("ZSCRGAN", None, None, f"no dump in {zscrgan_run.results}"))
        else:
            rows.append(("ZSCRGAN (best dump)", *zscrgan_row(path, q_labels, n_relevant, min(k, len(g_labels)))))
    rows.append(("chance (random ranking)", *chance(g_labels, q_labels, k), "expected value"))
    header = (f"{dataset.name}: {len(dataset.train_ids)} seen / {len(dataset.test_ids)} unseen classes, "
              f"{len(q_labels)} queries, gallery of {len(g_labels)} images, K = {min(k, len(g_labels))}\n"
              f"baselines fitted on {n_pairs} (text, image) pairs of the seen classes, seed {seed}")
    return header, rows


def format_table(header, rows, k):
    """The comparison as a text table."""
    width = max(len(r[0]) for r in rows)
    lines = [header, "", f"{'method':<{width}}  {'Prec@' + str(k):>8}  {'mAP@' + str(k):>8}  note"]
    for method, prec, mean_ap, note in rows:
        cells = [f"{v:>8.4f}" if v is not None else f"{'-':>8}" for v in (prec, mean_ap)]
        lines.append(f"{method:<{width}}  {cells[0]}  {cells[1]}  {note}".rstrip())
    return "\n".join(lines)


def add_arguments(p):
    p.description = __doc__.splitlines()[0]
    cli.run_arguments(p)
    p.add_argument("--k", type=cli.positive(int), help="K of Prec@K and mAP@K (default: configs/default.yml's top_k)")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of training pairs (default: 0)")
    p.add_argument("--alpha", type=cli.positive(float), default=1.0, help="ridge regularisation (default: 1.0)")
    p.add_argument("--cca_dim", type=cli.positive(int), default=None,
                   help=f"CCA components (default: seen classes - 1, at most {CCA_DIM_CAP})")
    p.add_argument("--max_pairs", type=cli.positive(int), default=2000,
                   help="training pairs, split equally over the seen classes (default: 2000)")


def main(args):
    dataset = load_dataset(dataset_folder(args.datasets_dir or default("datasets_dir"), args.dataset))
    k = args.k or default("top_k")
    zscrgan_run = Run.find(args.dataset, args.run_name, args.logs_dir, args.results_dir)
    header, rows = run(dataset, zscrgan_run, k, args.seed, args.alpha, args.cca_dim, args.max_pairs)
    print(format_table(header, rows, k))
    return 0


if __name__ == "__main__":  # the command of earlier versions
    from zscrgan.cli import forward
    forward("baselines")
