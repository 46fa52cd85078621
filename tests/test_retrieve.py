"""`zscrgan retrieve`: bad input refused before anything is written; rankings from features,
a FAISS index, noise files and several samples."""
import pickle

import numpy as np
import pytest
import yaml

from conftest import tool_here
from test_bad_input import snapshot

T, I, E, Z = 6, 5, 4, 2


@pytest.fixture
def fake_export(tmp_path):
    """A folder that passes the export checks that come before TensorFlow, and valid inputs."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    meta = {"format": "zscrgan-export-1", "text_dim": T, "image_dim": I, "embed_dim": E, "z_dim": Z,
            "dataset": "TINY", "checkpoint": {"path": "x", "round": 1}, "config": {"top_k": 5}}
    (model / "zscrgan.yml").write_text(yaml.safe_dump(meta))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "q.npy", rng.random((3, T), dtype=np.float32))
    np.save(tmp_path / "g.npy", rng.random((8, I), dtype=np.float32))
    return tmp_path, model


BAD = {
    "not an export": (["{tmp}", "--queries", "{tmp}/q.npy", "--gallery", "{tmp}/g.npy"], "not a zscrgan export"),
    "wrong query width": (["{model}", "--queries", "{tmp}/g.npy", "--gallery", "{tmp}/g.npy"], "6 wide"),
    "wrong gallery width": (["{model}", "--queries", "{tmp}/q.npy", "--gallery", "{tmp}/q.npy"], "5 wide"),
    "empty gallery": (["{model}", "--queries", "{tmp}/q.npy", "--gallery", "{tmp}/empty.npy"], "empty gallery"),
    "noise shapes": (["{model}", "--queries", "{tmp}/q.npy", "--gallery", "{tmp}/g.npy", "--noise", "{tmp}/n.npz"],
                     "do not fit 3 queries"),
    "k above gallery": (["{model}", "--queries", "{tmp}/q.npy", "--gallery", "{tmp}/g.npy", "--k", "9"],
                        "larger than the gallery"),
    "no gallery": (["{model}", "--queries", "{tmp}/q.npy"], "needs a gallery"),
    "queries a folder": (["{model}", "--queries", "{tmp}", "--gallery", "{tmp}/g.npy"],
                         "--queries {tmp} is a folder: give an .npy array or a .pkl dict"),
    "gallery missing": (["{model}", "--queries", "{tmp}/q.npy", "--gallery", "{tmp}/nope.npy"],
                        "--gallery {tmp}/nope.npy: no such file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(fake_export, case, capsys, monkeypatch):
    """In process: every check comes before TensorFlow, and a traceback would fail the test."""
    from zscrgan import cli
    tmp, model = fake_export
    np.save(tmp / "empty.npy", np.zeros((0, I), np.float32))
    np.savez(tmp / "n.npz", eps=np.zeros((3, E + 1), np.float32), z=np.zeros((3, Z), np.float32))
    args, words = BAD[case]
    args = [a.format(tmp=tmp, model=model) for a in args] + ["--out", str(tmp / "r.csv"), "--save_index",
                                                             str(tmp / "i.npz")]
    before = snapshot(tmp)
    monkeypatch.chdir(tmp)
    status = cli.main(args, prog="zscrgan retrieve", only="retrieve")
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert words.format(tmp=tmp) in lines[0]
    assert snapshot(tmp) == before


def test_an_index_that_is_a_folder_and_a_run_folder_for_a_model_are_named(fake_export, capsys, monkeypatch):
    from zscrgan import cli
    tmp, model = fake_export
    monkeypatch.chdir(tmp)
    status = cli.main([str(model), "--queries", str(tmp / "q.npy"), "--index", str(tmp)], only="retrieve")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == [f"error: --index {tmp} is a folder: give an index that `retrieve --save_index` wrote"]
    run = tmp / "logs" / "TINY_logs"
    run.mkdir(parents=True)
    (run / "config.yml").write_text("dataset: TINY\n")
    status = cli.main([str(run), "--dataset", "TINY"], only="retrieve")
    err = capsys.readouterr().err.strip()
    assert status == 2 and f"{run} is a run folder, not a zscrgan export" in err
    assert f"`zscrgan export --dataset TINY --logs_dir {tmp / 'logs'} --out NEW_FOLDER`" in err  # never --out {run}


def test_classes_are_labelled_by_what_the_exported_run_trained_on(fake_export):
    """retrieve --map's words for a class: the export's dataset split less the validation classes
    its config records; nothing when the dataset or the held-out classes cannot be known."""
    import argparse
    from conftest import make_dataset
    from zscrgan.tools.retrieve import class_kinds
    tmp, _ = fake_export
    make_dataset(str(tmp / "datasets" / "TINY"))  # seen 0-3, unseen 4-6
    args = argparse.Namespace(datasets_dir=str(tmp / "datasets"))
    meta = {"dataset": "TINY", "config": {"val_classes": [1]}}
    assert class_kinds(args, meta) == {0: "seen", 1: "held out", 2: "seen", 3: "seen", 4: "unseen", 5: "unseen",
                                       6: "unseen"}
    assert class_kinds(args, {"dataset": "TINY", "config": {"val_classes": 2}}) == {}  # which 2: unknown
    assert class_kinds(args, {"dataset": "GONE", "config": {}}) == {}


def _dicts(folder, rng, n_classes=3, per_class=4):
    """New classes 10.. the model never saw: queries and gallery as dataset-format .pkl dicts."""
    q = {10 + c: rng.normal(size=(2, T)).astype(np.float32) for c in range(n_classes)}
    g = {10 + c: np.abs(rng.normal(size=(per_class, I))).astype(np.float32) for c in range(n_classes)}
    g[10] = np.concatenate([g[10], g[10][:2]])  # duplicated images: exact ties
    for name, d in (("q.pkl", q), ("g.pkl", g)):
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    return q, g


@pytest.mark.slow
def test_exact_index_equals_brute_force_on_new_classes(tiny_export, tmp_path, capsys):
    _, model = tiny_export
    _dicts(tmp_path, np.random.default_rng(1))
    args = ["--queries", tmp_path / "q.pkl", "--k", 7, "--seed", 3]
    proc = tool_here(capsys, "retrieve", model, "--gallery", tmp_path / "g.pkl", "--save_index", tmp_path / "idx.npz")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = tool_here(capsys, "retrieve", model, *args, "--index", tmp_path / "idx.npz", "--out", tmp_path / "a.csv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prec_at_7 = " in proc.stdout
    proc = tool_here(capsys, "retrieve", model, *args, "--gallery", tmp_path / "g.pkl", "--out", tmp_path / "b.csv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = (tmp_path / "a.csv").read_text(), (tmp_path / "b.csv").read_text()
    assert a.splitlines()[0] == "query,rank,gallery_row,gallery_class,score,query_class"
    assert len(a.splitlines()) == 1 + 6 * 7
    with open(tmp_path / "q.pkl", "rb") as f:
        labels = [c for c, vectors in pickle.load(f).items() for _ in vectors]  # the dict's order
    assert [int(line.split(",")[5]) for line in a.splitlines()[1::7]] == labels
    rows = lambda text: [line.split(",")[:4] for line in text.splitlines()]
    assert rows(a) == rows(b)
    assert np.allclose(np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1)[:, 4],
                       np.loadtxt(tmp_path / "b.csv", delimiter=",", skiprows=1)[:, 4])


@pytest.mark.slow
def test_seed_noise_file_and_samples(tiny_export, tmp_path, capsys):
    """--seed S equals --noise with the draws zscrgan.yml describes; --samples averages S draws."""
    import tensorflow as tf
    _, model = tiny_export
    meta = yaml.safe_load((model / "zscrgan.yml").read_text())
    rng = np.random.default_rng(2)
    np.save(tmp_path / "q.npy", rng.normal(size=(5, T)).astype(np.float32))
    np.save(tmp_path / "g.npy", np.abs(rng.normal(size=(9, I))).astype(np.float32))
    g = tf.random.Generator.from_seed(4, alg="philox")
    eps, z = [], []
    for _ in range(3):
        eps.append(g.truncated_normal([5, meta["embed_dim"]]).numpy())
        z.append(g.normal([5, meta["z_dim"]]).numpy())
    np.savez(tmp_path / "n1.npz", eps=eps[0], z=z[0])
    np.savez(tmp_path / "n3.npz", eps=np.stack(eps), z=np.stack(z))
    base = ["--queries", tmp_path / "q.npy", "--gallery", tmp_path / "g.npy", "--k", 9]
    outputs = {}
    for name, extra in {"seed": ["--seed", 4], "file": ["--noise", tmp_path / "n1.npz"],
                        "seed3": ["--seed", 4, "--samples", 3], "file3": ["--noise", tmp_path / "n3.npz"]}.items():
        proc = tool_here(capsys, "retrieve", model, *base, *extra, "--out", tmp_path / f"{name}.csv")
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[name] = (tmp_path / f"{name}.csv").read_text()
        assert ",," in outputs[name] and outputs[name].endswith(",\n")  # arrays: both classes unknown
    assert outputs["seed"] == outputs["file"] and outputs["seed3"] == outputs["file3"]
    assert outputs["seed"] != outputs["seed3"]


@pytest.mark.slow
def test_dataset_pictures_and_index_of_the_split(tiny_export, tmp_path, capsys):
    """--show and --map from the dataset's split; --save_index of it, then --index with --dataset."""
    base, model = tiny_export
    flags = ["--dataset", "TINY", "--datasets_dir", base / "datasets", "--results_dir", tmp_path / "res", "--k", 4]
    proc = tool_here(capsys, "retrieve", model, *flags, "--show", tmp_path / "g.png", "--map", tmp_path / "m.png",
                    "--save_index", tmp_path / "idx.npz", "--out", tmp_path / "a.csv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prec_at_4 = " in proc.stdout and "map_at_4 = " in proc.stdout
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "m.png").stat().st_size > 0
    proc = tool_here(capsys, "retrieve", model, *flags, "--index", tmp_path / "idx.npz", "--out", tmp_path / "b.csv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "a.csv").read_text().splitlines()[1:] == (tmp_path / "b.csv").read_text().splitlines()[1:]
    assert all(line.split(",")[5] in ("4", "5", "6") for line in (tmp_path / "a.csv").read_text().splitlines()[1:])
