"""zscrgan.pictures: the retrieval grid frames hits green and misses red and labels each row with
its own Prec@k; the map labels classes by what the run trained on; no label overlaps another."""
import numpy as np
import pytest
from matplotlib.image import imread

from zscrgan.toolkit import pictures


def _frames(path):
    """(green pixels, red pixels) of the frame colours."""
    rgb = (imread(path)[..., :3] * 255).astype(int)
    green = np.sum((abs(rgb - [0x1a, 0x9a, 0x1a]) < 12).all(-1))
    red = np.sum((abs(rgb - [0xd6, 0x20, 0x20]) < 12).all(-1))
    return green, red


def test_grid_green_only_when_every_item_is_right(tmp_path, drawn):
    gallery_labels = np.repeat([3, 7], 5)
    query_labels = np.array([3, 3, 7])
    right = np.array([[0, 1, 2], [4, 3, 2], [5, 6, 7]])
    thumbs = {3: np.zeros((5, 16, 15)), 7: np.ones((5, 16, 15))}
    pictures.grid(tmp_path / "good.png", query_labels, right, gallery_labels, thumbs)
    pictures.grid(tmp_path / "bad.png", query_labels, right[::-1], gallery_labels)  # tiles, wrong classes
    green, red = _frames(tmp_path / "good.png")
    assert green > 0 and red == 0
    green, red = _frames(tmp_path / "bad.png")
    assert red > green > 0  # the middle query keeps its class
    assert all(not d["overlaps"] for d in drawn.values()), drawn


@pytest.mark.parametrize("n_classes, columns", [(5, 3), (1, 10)])
def test_grid_rows_carry_their_own_prec_and_the_class_mean_and_no_label_overlaps(tmp_path, drawn, n_classes,
                                                                                  columns):
    """3 queries per class (5 classes: 15 rows); with 5 classes query i of a class finds i + 1 of
    its class in its top 3 (Prec@3 0.33, 0.67, 1.00), with 1 class every item is of its class."""
    gallery_labels = np.repeat(np.arange(n_classes), 10)
    query_labels = np.repeat(np.arange(n_classes), 3)
    rows = []
    for q, c in enumerate(query_labels):
        mine, others = np.flatnonzero(gallery_labels == c), np.flatnonzero(gallery_labels != c)
        hits = q % 3 + 1 if n_classes > 1 else columns
        rows.append(np.concatenate([mine[:hits], others[:columns - hits]]))
    path = tmp_path / "grid.png"
    pictures.grid(path, query_labels, np.array(rows), gallery_labels, columns=columns)
    shown = drawn[str(path)]
    assert shown["overlaps"] == []
    own = (1 / 3, 2 / 3, 1.0) if n_classes > 1 else (1.0, 1.0, 1.0)
    for q, c in enumerate(query_labels):
        label = f"query {q}, class {c}\nPrec@{columns} {own[q % 3]:.2f}\nclass mean Prec@{columns} {np.mean(own):.2f}"
        assert label in shown["texts"]
    assert imread(path).shape[0] > 100 * len(query_labels)


def test_position_in_class_counts_within_each_class():
    assert pictures.position_in_class(np.array([3, 3, 7, 3, 7])).tolist() == [0, 1, 0, 2, 1]


def test_map_labels_classes_by_what_the_run_trained_on(tmp_path, drawn):
    rng = np.random.default_rng(0)
    g, q, s = rng.normal(size=(30, 4)), rng.normal(size=(9, 4)), rng.normal(size=(20, 4))
    labels = np.repeat([3, 7, 8], 10)
    kinds = {0: "seen", 1: "seen", 3: "unseen", 7: "unseen", 8: "seen"}
    pictures.tsne_map(tmp_path / "map.png", g, labels, q, np.repeat([3, 7, 8], 3), (s, np.repeat([0, 1], 10)), kinds)
    shown = drawn[str(tmp_path / "map.png")]
    assert {"class 3 (unseen) gallery", "class 8 (seen) gallery", "class 0 (seen) images"} <= set(shown["texts"])
    assert "Common space (t-SNE): gallery o, queries *, seen-class images x" in shown["texts"]
    assert shown["overlaps"] == [] and imread(tmp_path / "map.png").shape[0] > 100
    # a run whose split is not known: classes by id alone; an all-unseen gallery is named so
    assert pictures.gallery_label(3, {}) == "class 3 gallery"
    assert pictures.map_title(labels, {}, False) == "Common space (t-SNE): gallery o, queries *"
    assert pictures.map_title(labels, {3: "unseen", 7: "unseen", 8: "unseen"}, False) == \
        "Common space (t-SNE): unseen gallery o, queries *"
