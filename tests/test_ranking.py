"""zscrgan.model.ranking: brute force and FAISS give the trainer's ranking, ties to the lower row."""
import numpy as np
import pytest
import tensorflow as tf

from zscrgan.model import ranking as search
from zscrgan.tools import retrieve


def normalised(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def tied():
    """Queries and a gallery holding many exact duplicates, so ties cross the k-th place."""
    rng = np.random.default_rng(0)
    base = normalised(rng.normal(size=(40, 8)))
    gallery = base[rng.integers(0, 40, 300)]
    return normalised(rng.normal(size=(25, 8))), gallery


def test_brute_force_puts_ties_on_the_lower_row():
    gallery = normalised(np.array([[1, 0], [0, 1], [1, 0], [1, 0]], np.float64))
    rows, scores = search.brute_force(normalised(np.array([[1.0, 0.1]])), gallery, 3)
    assert rows.tolist() == [[0, 2, 3]] and scores[0, 0] == scores[0, 2]


@pytest.mark.parametrize("k", [1, 7, 50, 300])
def test_exact_index_equals_brute_force_with_ties(tied, k):
    queries, gallery = tied
    want_rows, want_scores = search.brute_force(queries, gallery, k)
    rows, scores = search.search(search.build_index(gallery), queries, k)
    assert np.array_equal(rows, want_rows)
    assert np.allclose(scores, want_scores)


def test_hnsw_finds_nearly_all_and_ranks_its_finds_the_same_way(tied):
    queries, gallery = tied[0], normalised(np.random.default_rng(1).normal(size=(300, 8)))
    rows, scores = search.search(search.build_index(gallery, approximate=True), queries, 10)
    truth, _ = search.brute_force(queries, gallery, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, truth)]) > 0.9
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_saved_index_round_trip_and_another_models_index_refused(tied, tmp_path):
    queries, gallery = tied
    index = search.build_index(gallery)
    labels = np.arange(len(gallery)) % 3
    meta = {"dataset": "D", "checkpoint": {"path": "p", "round": 3}, "embed_dim": 8}
    retrieve.save_index(tmp_path / "i.npz", index, labels, retrieve.model_id(meta))
    again, got = retrieve.open_index(str(tmp_path / "i.npz"), meta)
    assert np.array_equal(got, labels)
    assert np.array_equal(search.search(again, queries, 5)[0], search.search(index, queries, 5)[0])
    with pytest.raises(retrieve.IndexFileError, match="another model"):
        retrieve.open_index(str(tmp_path / "i.npz"), {**meta, "checkpoint": {"path": "p", "round": 4}})


def test_top_k_ties_go_to_the_lower_index_and_chunks_agree():
    gallery = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    queries = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    idx = search.top_k_indices(queries, gallery, 3, chunk=1)
    np.testing.assert_array_equal(idx[0], [0, 2, 3])
    np.testing.assert_array_equal(idx[1], [1, 3, 0])
    np.testing.assert_array_equal(idx, search.top_k_indices(queries, gallery, 3, chunk=100))
    assert search.top_k_indices(queries, gallery, 50, chunk=2).shape == (3, 4)  # K' = min(K, N)


def test_chunked_ranking_equals_a_full_sort_with_ties():
    rng = np.random.default_rng(0)
    gallery = np.round(rng.normal(size=(97, 4)), 1).astype(np.float32)  # rounding makes ties
    gallery[50] = gallery[3]
    queries = np.round(rng.normal(size=(13, 4)), 1).astype(np.float32)
    sims = queries @ gallery.T
    want = np.array([sorted(range(97), key=lambda j: (-s[j], j))[:10] for s in sims])
    for chunk in (1, 7, 10, 97, 500):
        got = search.top_k_indices(tf.constant(queries), tf.constant(gallery), 10, chunk)
        np.testing.assert_array_equal(got, want, err_msg=f"chunk {chunk}")
