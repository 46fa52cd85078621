"""zscrgan.model.metrics: Prec@K is a macro mean, mAP@K by hand, the dump's records."""
import numpy as np
import pytest

from zscrgan.model import metrics as ev


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


def test_dump_records_format_and_recomputed_score():
    q = np.array([4, 4, 5])
    r = np.array([[4, 5], [5, 5], [5, 4]])
    records = ev.dump_records(q, r)
    assert records == [{4: [4, 5]}, {4: [5, 5]}, {5: [5, 4]}]
    assert all(type(next(iter(d))) is int for d in records)
    assert ev.prec_from_records(records) == ev.prec_at_k(q, r)
