"""zscrgan.model.evaluation: the Evaluator ranks the unseen split in the dicts' stored order."""
import os
import pickle

import numpy as np
import pytest

from conftest import make_dataset, tiny_config
from zscrgan.data.dataset import load_dataset
from zscrgan.model import evaluation as ev
from zscrgan.model.em import ZSCRGAN
from zscrgan.model.metrics import prec_from_records


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
    assert metrics["prec_at_50"] == prec_from_records(records)
    assert 0.0 <= metrics["map_at_50"] <= 1.0


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
