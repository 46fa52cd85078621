import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from conftest import make_dataset, tiny_config
from zscrgan import evaluation as ev
from zscrgan.data import load_dataset
from zscrgan.training import ZSCRGAN


def test_prec_at_k_is_a_macro_mean_over_classes():
    # class 1: two queries, hits 2/2 and 0/2 -> 0.5; class 2: one query, 1/2 -> 0.5... then 3 hits
    q = np.array([1, 1, 2])
    r = np.array([[1, 1], [2, 2], [2, 1]])
    assert ev.prec_at_k(q, r) == pytest.approx((0.5 + 0.5) / 2)
    q = np.array([1, 1, 1, 2])
    r = np.array([[1, 1], [1, 1], [1, 1], [1, 1]])
    # micro mean would be 6/8; macro is (1 + 0) / 2
    assert ev.prec_at_k(q, r) == 0.5


def test_map_at_k_by_hand():
    q = np.array([1, 2])
    r = np.array([[1, 0, 1], [0, 2, 2]])
    # query 1: hits at 1 and 3: (1/1 + 2/3) / min(3, R=2); query 2: hits at 2, 3: (1/2 + 2/3) / min(3, 4)
    want = ((1 + 2 / 3) / 2 + (1 / 2 + 2 / 3) / 3) / 2
    assert ev.map_at_k(q, r, np.array([2, 4])) == pytest.approx(want)


def test_top_k_ties_go_to_the_lower_index_and_chunks_agree():
    gallery = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    queries = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    idx = ev.top_k_indices(queries, gallery, 3, chunk=1)
    np.testing.assert_array_equal(idx[0], [0, 2, 3])
    np.testing.assert_array_equal(idx[1], [1, 3, 0])
    np.testing.assert_array_equal(idx, ev.top_k_indices(queries, gallery, 3, chunk=100))
    assert ev.top_k_indices(queries, gallery, 50, chunk=2).shape == (3, 4)  # K' = min(K, N)


def test_dump_records_format_and_recomputed_score():
    q = np.array([4, 4, 5])
    r = np.array([[4, 5], [5, 5], [5, 4]])
    records = ev.dump_records(q, r)
    assert records == [{4: [4, 5]}, {4: [5, 5]}, {5: [5, 4]}]
    assert all(type(next(iter(d))) is int for d in records)
    assert ev.prec_from_records(records) == ev.prec_at_k(q, r)


def test_evaluator_ranks_the_unseen_split(tmp_path):
    ds = load_dataset(make_dataset(str(tmp_path / "D"), n_img=30))
    cfg = tiny_config(top_k=50)
    model = ZSCRGAN(cfg, ds.text_dim, ds.image_dim, ds)
    evaluator = ev.Evaluator(ds, model.nets, model.rng, k=50, eval_ks=[5, 50], chunk=2)
    metrics, records = evaluator.evaluate()
    assert set(metrics) == {"prec_at_5", "prec_at_50", "map_at_50"}
    assert len(records) == sum(len(ds.text[c]) for c in ds.test_ids)
    assert [next(iter(r)) for r in records] == [c for c in ds.test_ids for _ in ds.text[c]]
    assert all(len(next(iter(r.values()))) == 50 for r in records)
    assert metrics["prec_at_50"] == ev.prec_from_records(records)
    assert 0.0 <= metrics["map_at_50"] <= 1.0


def test_chunked_ranking_equals_a_full_sort_with_ties():
    rng = np.random.default_rng(0)
    gallery = np.round(rng.normal(size=(97, 4)), 1).astype(np.float32)  # rounding makes ties
    gallery[50] = gallery[3]
    queries = np.round(rng.normal(size=(13, 4)), 1).astype(np.float32)
    sims = queries @ gallery.T
    want = np.array([sorted(range(97), key=lambda j: (-s[j], j))[:10] for s in sims])
    for chunk in (1, 7, 10, 97, 500):
        got = ev.top_k_indices(tf.constant(queries), tf.constant(gallery), 10, chunk)
        np.testing.assert_array_equal(got, want, err_msg=f"chunk {chunk}")


def write_unsorted_dataset(folder, text_order, image_order):
    """Pickles written directly, so each dict is stored in the given key order; testids.pkl
    is [7, 3, 8]. Every unseen image is the same vector, so the whole gallery ties."""
    rng = np.random.default_rng(0)
    os.makedirs(folder)
    image = lambda c: np.tile(np.float32([0.2, 0.5, 0.1, 0.7, 0.3]), (2, 1)) if c in (3, 7, 8) \
        else rng.uniform(0, 1, (2, 5)).astype(np.float32)
    parts = {"txt_embed_dict.pkl": {c: rng.normal(size=(2, 6)).astype(np.float32) for c in text_order},
             "image_embed_dict.pkl": {c: image(c) for c in image_order},
             "trainids.pkl": [1, 0], "testids.pkl": [7, 3, 8]}
    for name, obj in parts.items():
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return folder


@pytest.mark.parametrize("text_order,image_order", [([0, 1, 3, 7, 8], [0, 1, 3, 7, 8]),
                                                    ([8, 0, 7, 1, 3], [7, 1, 8, 3, 0])])
def test_queries_and_gallery_follow_the_dicts_stored_order(tmp_path, text_order, image_order):
    """As the reference iterates txt_embed_dict and image_embed_dict, not testids.pkl (docs/algorithm.md §7)."""
    ds = load_dataset(write_unsorted_dataset(str(tmp_path / "D"), text_order, image_order))
    model = ZSCRGAN(tiny_config(batch_size=2), ds.text_dim, ds.image_dim, ds)
    _, records = ev.Evaluator(ds, model.nets, model.rng, k=6, chunk=1).evaluate()
    unseen = lambda order: [c for c in order if c in (3, 7, 8) for _ in range(2)]
    assert [next(iter(r)) for r in records] == unseen(text_order)
    # Tied scores go to the lower gallery index: the gallery is ranked in image_embed_dict's order.
    assert all(next(iter(r.values())) == unseen(image_order) for r in records)
