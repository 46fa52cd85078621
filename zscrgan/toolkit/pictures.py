"""Pictures of what a model retrieves (`retrieve --show`, `retrieve --map`).

grid: for a few queries of each class, the top gallery items in rank order, framed green
(the query's class) or red; thumbnails come from a dataset's thumbnails.npz ({class id as
text: (n, h, w) images in the gallery's order}), else tiles coloured and labelled by class.
tsne_map: the common space in 2-D (t-SNE), gallery coloured by class, queries marked,
classes labelled seen or unseen by what the run trained on. `pyplot` and `save` serve every figure of the
project (report's plots too).
"""
import io

import numpy as np

from zscrgan.files import atomic_write

PER_CLASS, COLUMNS, MAX_POINTS = 3, 10, 3000
TILE_HUES = (0, 1, 4, 5, 6, 7, 8, 9)  # tab10's hues but green (2) and red (3)


def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no display needed."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    return plt


def save(fig, path, dpi=100, tight=True):
    """Write a figure as a PNG, atomically, and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(fig)
    atomic_write(path, buf.getvalue(), "plot")


def legend_beside(ax, fontsize=8):
    """The axes' legend to their right, where it covers no curve."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def whole_rounds(ax):
    """Ticks on whole rounds only on the x axis (no 1.5), one tick for a single round."""
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _colour(plt, c):
    return plt.get_cmap("tab10")(int(c) % 10)


def position_in_class(labels):
    """(N,): each gallery row's index among the rows of its class, in gallery order."""
    pos = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        pos[labels == c] = np.arange(np.sum(labels == c))
    return pos


def grid(path, query_labels, rows, gallery_labels, thumbnails=None, per_class=PER_CLASS, columns=COLUMNS):
    """Draw the grid to `path`; rows (Q, k) gallery rows best first, labels (Q,) and (N,).

    Each row is labelled with its query's own Prec@k (k: the columns shown) and the mean
    Prec@k of all queries of its class.
    """
    plt = pyplot()
    k = min(columns, rows.shape[1])
    hits = gallery_labels[rows[:, :k]] == query_labels[:, None]
    pos = position_in_class(gallery_labels)
    classes = np.unique(query_labels)
    picked = [(c, q) for c in classes for q in _spread(np.flatnonzero(query_labels == c), per_class)]
    fig, axes = plt.subplots(len(picked), k, figsize=(1.1 * k + 1.6, 1.25 * len(picked) + 0.5), squeeze=False,
                             layout="constrained")
    for i, (c, q) in enumerate(picked):
        axes[i, 0].set_ylabel(f"query {q}, class {c}\nPrec@{k} {hits[q].mean():.2f}\n"
                              f"class mean Prec@{k} {hits[query_labels == c].mean():.2f}",
                              fontsize=7, rotation=0, ha="right", va="center")
        for j in range(k):
            row = rows[q, j]
            _cell(plt, axes[i, j], gallery_labels[row], pos[row], thumbnails, hits[q, j])
    for j in range(k):
        axes[0, j].set_title(f"#{j + 1}", fontsize=7)
    fig.suptitle(f"Top {k} gallery items per query (green: the query's class, red: another)", fontsize=9)
    save(fig, path, dpi=110, tight=False)


def _spread(indices, n):
    """n of `indices`, evenly spaced (all when fewer)."""
    if len(indices) <= n:
        return list(indices)
    return [indices[i] for i in np.linspace(0, len(indices) - 1, n).round().astype(int)]


def _cell(plt, ax, cls, pos, thumbnails, hit):
    image = thumbnails.get(int(cls)) if thumbnails else None
    if image is not None and pos < len(image):
        ax.imshow(image[pos], cmap="gray_r", interpolation="nearest")
    else:  # pale tiles, never green or red: those colours belong to the frames
        ax.set_facecolor(plt.get_cmap("tab20")(2 * TILE_HUES[int(cls) % len(TILE_HUES)] + 1))
        ax.text(0.5, 0.5, str(cls), ha="center", va="center", fontsize=11, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor("#1a9a1a" if hit else "#d62020")
        spine.set_linewidth(3)


def tsne_map(path, gallery, gallery_labels, queries, query_labels, seen=None, kinds=None, seed=0):
    """t-SNE of gallery (N, E) and query (Q, E) embeddings; seen: (embeddings, labels) of seen
    classes; kinds: {class id: "seen", "unseen" or "held out"}, what the run trained on (a class
    it has no word for is labelled by its id alone)."""
    from sklearn.manifold import TSNE
    plt = pyplot()
    kinds = kinds or {}
    rng = np.random.default_rng(seed)
    parts = [("gallery", gallery, gallery_labels), ("query", queries, query_labels)]
    if seen is not None:
        parts.append(("seen", *seen))
    share = MAX_POINTS // len(parts)
    parts = [(kind, x[keep], y[keep]) for kind, x, y in parts
             for keep in [np.sort(rng.permutation(len(x))[:share])]]
    xy = TSNE(2, init="pca", random_state=seed, perplexity=min(30.0, (sum(len(x) for _, x, _ in parts) - 1) / 3)
              ).fit_transform(np.concatenate([x for _, x, _ in parts]))
    fig, ax = plt.subplots(figsize=(7, 6))
    start = 0
    for kind, x, y in parts:
        pts, start = xy[start:start + len(x)], start + len(x)
        for c in np.unique(y):
            m = y == c
            style = {"gallery": dict(marker="o", s=14, alpha=0.6, label=gallery_label(c, kinds)),
                     "query": dict(marker="*", s=60, edgecolors="black", linewidths=0.4, label=f"class {c} query"),
                     "seen": dict(marker="x", s=10, alpha=0.35, label=f"class {c} (seen) images")}[kind]
            ax.scatter(pts[m, 0], pts[m, 1], color=_colour(plt, c), **style)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(map_title(gallery_labels, kinds, seen is not None), fontsize=9)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    save(fig, path, dpi=110, tight=False)


def gallery_label(c, kinds):
    """A gallery class's legend entry: 'class 3 (unseen) gallery', or 'class 3 gallery' when the
    run's word for it is not known."""
    return f"class {c} ({kinds[int(c)]}) gallery" if int(c) in kinds else f"class {c} gallery"


def map_title(gallery_labels, kinds, with_seen):
    """The map's title, naming the gallery 'unseen' (or 'seen') only when all its classes are."""
    words = {kinds.get(int(c)) for c in np.unique(gallery_labels)}
    gallery = f"{words.pop()} gallery" if len(words) == 1 and None not in words else "gallery"
    return f"Common space (t-SNE): {gallery} o, queries *" + (", seen-class images x" if with_seen else "")
