"""zscrgan.search: brute force and FAISS give the trainer's ranking, ties to the lower row."""
import numpy as np
import pytest

from zscrgan import search


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
    search.save_index(tmp_path / "i.npz", index, labels, "model A")
    again, got = search.load_index(tmp_path / "i.npz", "model A", 8)
    assert np.array_equal(got, labels)
    assert np.array_equal(search.search(again, queries, 5)[0], search.search(index, queries, 5)[0])
    with pytest.raises(search.IndexFileError, match="another model"):
        search.load_index(tmp_path / "i.npz", "model B", 8)
