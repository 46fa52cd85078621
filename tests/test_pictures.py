"""zscrgan.pictures: the retrieval grid frames hits green and misses red; the map is drawn."""
import numpy as np
from matplotlib.image import imread

from zscrgan.toolkit import pictures


def _frames(path):
    """(green pixels, red pixels) of the frame colours."""
    rgb = (imread(path)[..., :3] * 255).astype(int)
    green = np.sum((abs(rgb - [0x1a, 0x9a, 0x1a]) < 12).all(-1))
    red = np.sum((abs(rgb - [0xd6, 0x20, 0x20]) < 12).all(-1))
    return green, red


def test_grid_green_only_when_every_item_is_right(tmp_path):
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


def test_position_in_class_counts_within_each_class():
    assert pictures.position_in_class(np.array([3, 3, 7, 3, 7])).tolist() == [0, 1, 0, 2, 1]


def test_map_draws_gallery_queries_and_seen_classes(tmp_path):
    rng = np.random.default_rng(0)
    g, q, s = rng.normal(size=(30, 4)), rng.normal(size=(9, 4)), rng.normal(size=(20, 4))
    pictures.tsne_map(tmp_path / "map.png", g, np.repeat([3, 7, 8], 10), q, np.repeat([3, 7, 8], 3),
                      (s, np.repeat([0, 1], 10)))
    assert imread(tmp_path / "map.png").shape[0] > 100
