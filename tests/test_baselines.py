"""Baselines: pairs from seen classes only, ranking as the evaluation ranks, chance level, the table."""
import itertools
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_tool
from zscrgan.data.dataset import eval_split, load_dataset, save_dataset
from zscrgan.model import baselines as zb
from zscrgan.model.metrics import dump_records, map_at_k, prec_at_k
from zscrgan.tools import baselines as tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEN, UNSEEN = [0, 1, 2, 3, 4, 5], [6, 7, 8]


def linked_dataset(folder, seed=0):
    """Texts and images are different linear views of a 3-d class latent, so the link learnt on
    seen classes carries over to unseen ones. Images are positive, as image features usually are."""
    rng = np.random.default_rng(seed)
    to_text, to_image = rng.normal(size=(3, 10)), rng.normal(size=(3, 14))
    text, images = {}, {}
    for c in SEEN + UNSEEN:
        z = rng.normal(size=3)
        text[c] = z @ to_text + 0.1 * rng.normal(size=(8, 10))
        images[c] = 5.0 + z @ to_image + 0.1 * rng.normal(size=(6 + c % 3, 14))
    save_dataset(str(folder), text, images, SEEN, UNSEEN)
    return load_dataset(str(folder))


@pytest.fixture
def dataset(tmp_path):
    return linked_dataset(tmp_path / "datasets" / "LINK")


def test_training_pairs_are_seen_same_class_balanced_and_seeded(dataset):
    texts, images = zb.training_pairs(dataset, 30, np.random.default_rng(0))
    assert texts.shape == (30, 10) and images.shape == (30, 14)
    owner = lambda x, d: [next(c for c in d if any(np.array_equal(x[i], v) for v in d[c])) for i in range(len(x))]  # noqa: E731
    t_cls, i_cls = owner(texts, dataset.text), owner(images, dataset.images)
    assert t_cls == i_cls and set(t_cls) == set(SEEN)
    assert np.bincount(t_cls).tolist() == [5] * 6
    again = zb.training_pairs(dataset, 30, np.random.default_rng(0))
    assert np.array_equal(texts, again[0]) and np.array_equal(images, again[1])
    assert not np.array_equal(texts, zb.training_pairs(dataset, 30, np.random.default_rng(1))[0])
    # a cap above texts x images per class takes every pair once
    texts, _ = zb.training_pairs(dataset, 10_000, np.random.default_rng(0))
    assert len(texts) == sum(8 * (6 + c % 3) for c in SEEN)


def test_retrieve_ranks_by_cosine_with_ties_to_the_lower_index():
    gallery = np.array([[1, 0], [2, 0], [0, 1], [1, 1], [3, 0]], np.float32)
    labels = np.array([10, 11, 12, 13, 14])
    queries = np.array([[5, 0], [0, 2], [1, 1.01]], np.float32)
    got = zb.retrieve(queries, gallery, labels, 3)
    assert got.tolist() == [[10, 11, 14], [12, 13, 10], [13, 12, 10]]
    # the same as a NumPy cosine with a stable descending sort
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(20, 4)).astype(np.float32)
    g[5] = g[2]
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    expected = np.argsort(-cos, axis=1, kind="stable")[:, :6]
    assert np.array_equal(zb.retrieve(q, g, np.arange(20), 6), expected)


def test_chance_is_the_mean_over_every_ranking():
    gallery = np.array([0, 0, 1, 1, 1, 2])
    queries = np.array([0, 1, 1, 2])
    k = 3
    precs, maps = [], []
    for perm in itertools.permutations(range(len(gallery))):
        retrieved = np.tile(gallery[list(perm)][:k], (len(queries), 1))
        precs.append(prec_at_k(queries, retrieved))
        n_relevant = np.array([np.sum(gallery == q) for q in queries])
        maps.append(map_at_k(queries, retrieved, n_relevant))
    prec, mean_ap = zb.chance(gallery, queries, k)
    assert prec == pytest.approx(np.mean(precs), abs=1e-12) == pytest.approx((2 + 3 + 1) / 6 / 3)
    assert mean_ap == pytest.approx(np.mean(maps), abs=1e-12)


def test_cca_dim_is_bounded():
    assert zb.cca_dim(None, 7, 76, 240, 1995) == 6
    assert zb.cca_dim(None, 200, 1024, 2048, 2000) == zb.CCA_DIM_CAP
    assert zb.cca_dim(50, 7, 10, 14, 2000) == 10
    assert zb.cca_dim(50, 7, 76, 240, 20) == 19
    assert zb.cca_dim(None, 1, 5, 5, 100) == 1


def test_baselines_beat_chance_when_the_link_is_linear(dataset):
    header, rows = zb.compare(dataset, k=10)
    table = {r.key: r for r in rows}
    assert [r.key for r in rows] == ["ridge", "cca", "chance"]
    chance = table["chance"].prec
    assert chance == pytest.approx(np.mean([(6 + c % 3) / 21 for c in UNSEEN]))
    assert table["ridge"].prec > chance + 0.3 and table["cca"].prec > chance + 0.3
    assert "6 seen / 3 unseen" in header and "24 queries, gallery of 21 images, K = 10" in header
    assert zb.compare(dataset, k=10) == (header, rows)  # seeded


def write_dump(folder, name, records):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        pickle.dump(records, f, protocol=2)


def test_best_dump_is_rescored_at_k(dataset, tmp_path, capsys):
    _, q_labels, _, g_labels = eval_split(dataset)
    ranked = np.array([np.argsort(g_labels != q, kind="stable") for q in q_labels])  # own class first
    res = tmp_path / "res" / "LINK_res"
    write_dump(res, "acc1.0.pkl", dump_records(q_labels, g_labels[ranked[:, :8]]))
    write_dump(res, "acc0.9.pkl", dump_records(q_labels, g_labels[ranked[:, :8][:, ::-1]]))
    code = run_tool("baselines", ["--dataset", "LINK", "--datasets_dir", str(tmp_path / "datasets"),
                    "--results_dir", str(tmp_path / "res"), "--k", "5"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("ZSCRGAN"))
    assert row.split()[3:] == ["1.0000", "1.0000", "acc1.0.pkl"]
    assert out.splitlines()[3].split()[:2] == ["method", "Prec@5"]
    run_tool("baselines", ["--dataset", "LINK", "--datasets_dir", str(tmp_path / "datasets"),
             "--results_dir", str(tmp_path / "res"), "--k", "9"])
    assert "acc1.0.pkl holds only the top 8" in capsys.readouterr().out


def test_dump_of_a_gallery_smaller_than_k(dataset, tmp_path):
    """With N = 21 < K = 50 the trainer dumps the whole ranking (K' = 21): still comparable."""
    _, q_labels, _, g_labels = eval_split(dataset)
    ranked = np.array([np.argsort(g_labels != q, kind="stable") for q in q_labels])
    write_dump(tmp_path / "LINK_res", "acc0.33.pkl", dump_records(q_labels, g_labels[ranked]))
    _, rows = zb.compare(dataset, k=50)
    prec, mean_ap, note = tool.zscrgan_row(str(tmp_path / "LINK_res" / "acc0.33.pkl"), dataset, 50)
    assert prec == pytest.approx(rows[-1].prec) and mean_ap == 1.0 and note == "acc0.33.pkl"


def test_foreign_dump_is_not_scored(dataset, tmp_path):
    write_dump(tmp_path / "LINK_res", "acc0.7.pkl", [{1: [1, 1]}])
    got = tool.zscrgan_row(str(tmp_path / "LINK_res" / "acc0.7.pkl"), dataset, 2)
    assert got == (None, None, "acc0.7.pkl: its queries are not this dataset's unseen texts")


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert run_tool("baselines", ["--dataset", "NOPE", "--datasets_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: dataset 'NOPE' not found in")
    save_dataset(str(tmp_path / "BAD"), {0: [[1.0]], 1: [[2.0]]}, {0: [[1.0]], 1: [[2.0]]}, [0, 1], [1])
    assert run_tool("baselines", ["--dataset", "BAD", "--datasets_dir", str(tmp_path)]) == 2
    assert "disjoint" in capsys.readouterr().err
    assert run_tool("baselines", ["--dataset", "X", "--k", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("argument --k: must be > 0, got 0 (see --help)")


def test_command_line_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zscrgan", "baselines", "--dataset", "NOPE",
                           "--datasets_dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: ")  # no TensorFlow chatter


def test_cca_failure_is_a_table_note(dataset, monkeypatch):
    def fail(*args):
        raise np.linalg.LinAlgError("SVD did not converge")
    monkeypatch.setattr(zb, "cca_embeddings", fail)
    _, rows = zb.compare(dataset, k=5)
    assert (rows[1].prec, rows[1].map) == (None, None) and "SVD did not converge" in rows[1].note


def test_run_name_scores_that_runs_best_dump(dataset, tmp_path, capsys):
    _, q_labels, _, g_labels = eval_split(dataset)
    ranked = np.array([np.argsort(g_labels != q, kind="stable") for q in q_labels])
    write_dump(tmp_path / "res" / "LINK_res" / "r1", "acc1.0.pkl", dump_records(q_labels, g_labels[ranked[:, :8]]))
    write_dump(tmp_path / "res" / "LINK_res", "acc0.9.pkl", dump_records(q_labels, g_labels[ranked[:, :8][:, ::-1]]))
    argv = ["--dataset", "LINK", "--datasets_dir", str(tmp_path / "datasets"), "--results_dir", str(tmp_path / "res"),
            "--k", "5"]
    assert run_tool("baselines", argv + ["--run_name", "r1"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ZSCRGAN"))
    assert row.split()[3:] == ["1.0000", "1.0000", "acc1.0.pkl"]
    assert run_tool("baselines", argv) == 0  # the unnamed run's folder: its own dump, not the named run's
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ZSCRGAN"))
    assert row.split()[-1] == "acc0.9.pkl" and row.split()[3] != "1.0000"
    assert run_tool("baselines", argv + ["--run_name", "r2"]) == 0
    assert f"no dump in {tmp_path / 'res' / 'LINK_res' / 'r2'}" in capsys.readouterr().out


def test_k_and_the_dataset_folder_are_the_runs_own(dataset, tmp_path, capsys):
    """A run trained with top_k 5 on a dataset elsewhere: no --k, no --datasets_dir needed."""
    _, q_labels, _, g_labels = eval_split(dataset)
    ranked = np.array([np.argsort(g_labels != q, kind="stable") for q in q_labels])
    logs = tmp_path / "logs" / "LINK_logs"
    logs.mkdir(parents=True)
    (logs / "config.yml").write_text(f"dataset: LINK\ntop_k: 5\ndatasets_dir: {tmp_path / 'datasets'}\n")
    (logs / "history.csv").write_text("round,prec_at_5,map_at_5\n1,1.0,1.0\n")
    write_dump(tmp_path / "res" / "LINK_res", "acc1.0.pkl", dump_records(q_labels, g_labels[ranked[:, :5]]))
    assert run_tool("baselines", ["--dataset", "LINK", "--logs_dir", tmp_path / "logs",
                                  "--results_dir", tmp_path / "res"]) == 0
    out = capsys.readouterr().out
    assert "K = 5" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith("ZSCRGAN"))
    assert row.split()[3:] == ["1.0000", "1.0000", "acc1.0.pkl"]
