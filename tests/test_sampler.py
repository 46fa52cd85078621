"""The batch sampler of docs/algorithm.md §6, drawn eagerly and compiled."""
import collections

import numpy as np
import tensorflow as tf

from conftest import make_dataset
from zscrgan.data.dataset import load_dataset
from zscrgan.model.sampler import BatchSampler


def sampler_for(tmp_path, batch_size, n_train, n_img=3):
    ds = load_dataset(make_dataset(str(tmp_path / "D"), n_train=n_train, n_img=n_img))
    return ds, BatchSampler(ds, batch_size, tf.random.Generator.from_seed(1))


def image_owner(ds, row):
    return next(c for c in ds.train_ids for im in ds.images[c] if np.array_equal(im, row))


def test_batch_larger_than_class_count_covers_every_class(tmp_path):
    ds, s = sampler_for(tmp_path, batch_size=10, n_train=4)
    for _ in range(5):
        v, t, y = s.sample()
        counts = collections.Counter(y.numpy().tolist())
        assert sorted(counts) == [0, 1, 2, 3] and sorted(counts.values()) == [2, 2, 3, 3]
        for row_v, row_t, label in zip(v.numpy(), t.numpy(), y.numpy()):
            np.testing.assert_array_equal(row_t, ds.text[label][0])  # the first text only
            assert image_owner(ds, row_v) == label


def test_small_batches_take_distinct_classes_and_never_pad(tmp_path):
    ds, s = sampler_for(tmp_path, batch_size=3, n_train=7)
    seen = []
    for _ in range(6):
        v, _, y = s.sample()
        labels = y.numpy().tolist()
        assert len(set(labels)) == 3 and v.shape == (3, ds.image_dim)
        assert np.all(np.abs(v.numpy()).sum(1) > 0)  # no zero rows (docs/algorithm.md §9.2)
        seen.append(labels)
    # 7 classes, batches of 3: each pass uses 6 of them and then reshuffles
    assert len(set(seen[0] + seen[1])) == 6 and len(set(seen[2] + seen[3])) == 6


def test_images_round_robin_per_class_advancing_before_use(tmp_path):
    ds, s = sampler_for(tmp_path, batch_size=4, n_train=4, n_img=3)
    order = collections.defaultdict(list)
    for _ in range(4):
        v, _, y = s.sample()
        for row, label in zip(v.numpy(), y.numpy()):
            idx = [i for i, im in enumerate(ds.images[label]) if np.array_equal(im, row)][0]
            order[int(label)].append(idx)
    assert all(seq == [1, 2, 0, 1] for seq in order.values())


def test_compiled_sampling_continues_the_same_state(tmp_path):
    _, s = sampler_for(tmp_path, batch_size=3, n_train=7)
    draw = tf.function(lambda: s.sample()[2], jit_compile=True)
    labels = [draw().numpy().tolist() for _ in range(4)]
    assert all(len(set(l)) == 3 for l in labels)
    assert int(s.cursor.numpy()) in (3, 6)


def test_first_pass_follows_trainids_then_passes_are_shuffled(tmp_path):
    folder = make_dataset(str(tmp_path / "D"), n_train=7, n_test=2)
    ds = load_dataset(folder)
    ds.train_ids = [5, 2, 6, 0, 3, 1, 4]  # an unsorted trainids.pkl
    s = BatchSampler(ds, 3, tf.random.Generator.from_seed(1))
    batches = [s.sample()[2].numpy().tolist() for _ in range(4)]
    assert batches[:2] == [[5, 2, 6], [0, 3, 1]]  # floor(7/3) batches in file order (docs/algorithm.md §6)
    order = s.order.numpy().tolist()  # the second pass
    assert sorted(order) == list(range(7)) and order != list(range(7))
    assert batches[2:] == [[ds.train_ids[i] for i in order[j:j + 3]] for j in (0, 3)]


def test_a_pass_of_exactly_b_classes_is_used_up_before_the_next_is_shuffled(tmp_path):
    """Seen classes a multiple of B: every class of the first pass comes first, in trainids.pkl
    order, and the new shuffled pass starts only when none is left (docs/algorithm.md §6)."""
    ds = load_dataset(make_dataset(str(tmp_path / "D"), n_train=6, n_test=2))
    s = BatchSampler(ds, 3, tf.random.Generator.from_seed(1))
    first = [s.sample()[2].numpy().tolist() for _ in range(2)]
    assert first == [ds.train_ids[:3], ds.train_ids[3:]] and int(s.cursor.numpy()) == 6
    assert s.order.numpy().tolist() == list(range(6))  # not yet reshuffled
    third = s.sample()[2].numpy().tolist()
    order = s.order.numpy().tolist()
    assert order != list(range(6)) and third == [ds.train_ids[i] for i in order[:3]]


def test_random_stream_is_drawn_only_where_it_was_before(tmp_path):
    """B >= C still draws the (unused) class order, so seeded runs like the demo keep their
    random stream; B < C starts in file order and draws nothing."""
    ds = load_dataset(make_dataset(str(tmp_path / "D"), n_train=4))
    for batch_size, draws in ((4, 1), (10, 1), (3, 0)):
        rng, expected = tf.random.Generator.from_seed(1), tf.random.Generator.from_seed(1)
        BatchSampler(ds, batch_size, rng)
        for _ in range(draws):
            expected.uniform([4])
        np.testing.assert_array_equal(rng.state.numpy(), expected.state.numpy(), err_msg=f"B = {batch_size}")
