"""zscrgan.prepare: converters, the synthetic generator, `check`, and safe writing.

Every input file is built here: tiny xlsa17 .mat files with scipy.io.savemat, arrays
as .npy / .npz / .csv.
"""
import glob
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from conftest import run_tool
from zscrgan import config as config_lib
from zscrgan.data import synthetic
from zscrgan.data.dataset import FILES, load_dataset, load_pickle, save_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny xlsa17: 5 classes (labels 1..5), seen 1, 2, 4, unseen 3, 5, 12 images.
LABELS = np.array([1, 2, 3, 1, 4, 5, 2, 3, 4, 1, 5, 4])
TRAINVAL = [1, 2, 4, 5, 7]          # 1-based image indexes (classes 1, 2, 1, 4, 2)
TEST_SEEN = [9, 10, 12]             # classes 4, 1, 4
TEST_UNSEEN = [3, 6, 8, 11]         # classes 3, 5, 3, 5


def run(*argv):
    """prepare.main(argv) -> exit status (argparse's own exits included)."""
    try:
        return run_tool("prepare", argv)
    except SystemExit as e:
        return e.code


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def gbu(tmp_path):
    """Paths and contents of a tiny res101.mat / att_splits.mat pair."""
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 1, (6, len(LABELS)))          # dim x N
    att = rng.uniform(0, 1, (4, 5))                         # attribute-dim x classes
    original_att = rng.uniform(0, 100, (3, 5))
    res101, splits = tmp_path / "res101.mat", tmp_path / "att_splits.mat"
    scipy.io.savemat(res101, {"features": features, "labels": LABELS[:, None].astype(float),
                              "image_files": np.array(["x.jpg"] * len(LABELS), dtype=object)})
    split_vars = {"att": att, "original_att": original_att,
                  "trainval_loc": np.array(TRAINVAL, np.int32)[:, None],
                  "test_seen_loc": np.array(TEST_SEEN, float)[:, None],
                  "test_unseen_loc": np.array(TEST_UNSEEN, np.uint16)[:, None]}
    scipy.io.savemat(splits, split_vars)
    return dict(res101=res101, splits=splits, features=features, att=att,
                original_att=original_att, split_vars=split_vars, out=tmp_path / "datasets" / "G")


def gbu_args(g, *extra):
    return ["gbu", "--res101", g["res101"], "--att-splits", g["splits"], "--out", g["out"], *extra]


def read_folder(folder):
    return {f: load_pickle(os.path.join(folder, f)) for f in FILES}


# ---------------------------------------------------------------- gbu

def test_gbu_writes_the_exact_folder(gbu, capsys):
    assert run(*gbu_args(gbu)) == 0
    raw = read_folder(gbu["out"])
    assert raw["trainids.pkl"] == [0, 1, 3]
    assert raw["testids.pkl"] == [2, 4]
    assert sorted(raw["txt_embed_dict.pkl"]) == sorted(raw["image_embed_dict.pkl"]) == [0, 1, 2, 3, 4]
    for c in range(5):
        np.testing.assert_array_equal(raw["txt_embed_dict.pkl"][c], gbu["att"][:, c][None].astype(np.float32))
        # every image of the class, seen classes' test_seen_loc images included, in file order
        expected = gbu["features"][:, LABELS == c + 1].T.astype(np.float32)
        np.testing.assert_array_equal(raw["image_embed_dict.pkl"][c], expected)
    assert [len(raw["image_embed_dict.pkl"][c]) for c in range(5)] == [3, 2, 2, 3, 2]
    assert raw["image_embed_dict.pkl"][0].dtype == np.float32
    out = capsys.readouterr().out
    assert "seen (train)" in out and "4-d" in out and "6-d" in out
    assert "python run_exp.py --dataset G" in out


def test_gbu_original_att(gbu):
    assert run(*gbu_args(gbu, "--semantic", "original_att")) == 0
    text = load_dataset(str(gbu["out"])).text
    for c in range(5):
        np.testing.assert_allclose(text[c], gbu["original_att"][:, c][None], rtol=1e-6)


def test_gbu_text_embeddings_several_per_class(gbu, tmp_path):
    labels = np.array([1, 1, 2, 3, 3, 3, 4, 5, 5])  # 1-based, as res101.mat's
    texts = np.arange(len(labels) * 7, dtype=np.float32).reshape(len(labels), 7)
    np.savez(tmp_path / "t.npz", texts=texts, labels=labels)
    assert run(*gbu_args(gbu, "--text-embeddings", tmp_path / "t.npz")) == 0
    text = load_dataset(str(gbu["out"])).text
    for c in range(5):
        np.testing.assert_array_equal(text[c], texts[labels == c + 1])


def test_gbu_leaves_out_classes_in_no_split(gbu, capsys):
    _resave(gbu["splits"], trainval_loc=np.array([[1], [4], [5]]))   # class 2's images in no split
    assert run(*gbu_args(gbu)) == 0
    ds = load_dataset(str(gbu["out"]))
    assert ds.train_ids == [0, 3] and ds.test_ids == [2, 4] and 1 not in ds.text and 1 not in ds.images
    assert "left out 2 images of 1 class in neither split" in capsys.readouterr().out


def _resave(path, **changes):
    data = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    data.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del data[k]
    scipy.io.savemat(path, data)


BAD_GBU = {
    "missing variable": ("splits", {"test_unseen_loc": None}, "has no variable 'test_unseen_loc'"),
    "index out of range": ("splits", {"test_unseen_loc": np.array([[3], [13]])}, "outside 1..12"),
    "overlapping split": ("splits", {"trainval_loc": np.array([[1], [2], [3]])}, "both trainval_loc and test_unseen_loc"),
    "test_seen of unseen": ("splits", {"test_seen_loc": np.array([[6]])}, "not a seen class"),
    "label out of range": ("res101", {"labels": np.r_[LABELS[:-1], 9][:, None]}, "outside 1..5"),
    "lengths differ": ("res101", {"labels": LABELS[:-1][:, None]}, "11 entries but features has 12 columns"),
    "NaN feature": ("res101", {"features": np.full((6, 12), np.nan)}, "NaN"),
    "empty unseen": ("splits", {"test_unseen_loc": np.zeros((0, 1))}, "no unseen classes"),
}


@pytest.mark.parametrize("case", sorted(BAD_GBU))
def test_gbu_bad_input_is_one_line_and_no_folder(gbu, capsys, case):
    which, changes, message = BAD_GBU[case]
    _resave(gbu["res101"] if which == "res101" else gbu["splits"], **changes)
    assert run(*gbu_args(gbu)) == 2
    assert message in one_error_line(capsys)
    assert not os.path.exists(gbu["out"])
    assert os.listdir(gbu["out"].parent) == [] if gbu["out"].parent.exists() else True


def test_gbu_flo_has_no_original_att(gbu, capsys):
    _resave(gbu["splits"], original_att=None)
    assert run(*gbu_args(gbu, "--semantic", "original_att")) == 2
    assert "FLO" in one_error_line(capsys)


def test_gbu_text_embeddings_missing_a_class(gbu, tmp_path, capsys):
    np.savez(tmp_path / "t.npz", texts=np.ones((3, 2)), labels=np.array([1, 2, 3]))
    assert run(*gbu_args(gbu, "--text-embeddings", tmp_path / "t.npz")) == 2
    assert "class 4 (1-based) has no text embeddings" in one_error_line(capsys)


def test_gbu_matlab_v73_is_named(gbu, capsys):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    gbu["res101"].write_bytes(header.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert run(*gbu_args(gbu)) == 2
    err = one_error_line(capsys)
    assert "v7.3" in err and "-v7" in err


def test_gbu_not_a_mat_file(gbu, capsys):
    gbu["splits"].write_text("hello")
    assert run(*gbu_args(gbu)) == 2
    assert "not a readable MATLAB file" in one_error_line(capsys)


# ---------------------------------------------------------------- validation classes (valids.pkl)

def _gbu_seven(tmp_path, val_classes):
    """xlsa17 files of 7 classes (1-based), 2 images each: seen 1-5, unseen 6-7, and val_loc
    holding the images of `val_classes`. Returns the gbu arguments."""
    labels = np.repeat(np.arange(1, 8), 2)
    rng = np.random.default_rng(2)
    res101, splits = tmp_path / "r7.mat", tmp_path / "s7.mat"
    scipy.io.savemat(res101, {"features": rng.uniform(0, 1, (4, 14)), "labels": labels[:, None].astype(float)})
    loc = lambda classes: (np.flatnonzero(np.isin(labels, classes)) + 1)[:, None]
    scipy.io.savemat(splits, {"att": rng.uniform(0, 1, (3, 7)), "trainval_loc": loc([1, 2, 3, 4, 5]),
                              "test_seen_loc": loc([1]), "test_unseen_loc": loc([6, 7]),
                              "val_loc": loc(val_classes)})
    return ["gbu", "--res101", res101, "--att-splits", splits, "--out", tmp_path / "datasets" / "V"]


def test_gbu_writes_the_splits_validation_classes(tmp_path, capsys):
    args = _gbu_seven(tmp_path, [2, 4])
    assert run(*args) == 0
    assert load_pickle(os.path.join(args[-1], "valids.pkl")) == [1, 3]   # 0-based, like the other ids
    assert "validation classes (valids.pkl): 2 of the seen classes, [1, 3]" in capsys.readouterr().out
    assert run("check", args[-1]) == 0
    assert "validation classes (valids.pkl): 2" in capsys.readouterr().out


def test_gbu_without_val_loc_writes_no_valids(gbu, capsys):
    assert run(*gbu_args(gbu)) == 0
    assert not os.path.exists(gbu["out"] / "valids.pkl")
    assert "no val_loc: no valids.pkl" in capsys.readouterr().out


@pytest.mark.parametrize("val,message", [([2], "validation needs at least 2"),
                                         ([2, 6], "class 5 is not a seen class"),
                                         ([1, 2, 3, 4], "at least 2 must stay for training")])
def test_gbu_val_loc_that_cannot_be_validation_classes_is_left_out(tmp_path, capsys, val, message):
    args = _gbu_seven(tmp_path, val)
    assert run(*args) == 0  # the dataset does not need it
    out = capsys.readouterr().out
    assert "val_loc" in out and message in out and "no valids.pkl written" in out
    assert sorted(os.listdir(args[-1])) == sorted(FILES)


@pytest.mark.parametrize("val_ids,message", [([0], "validation needs at least 2"), ([0, 5], "class 5 is not a seen")])
def test_check_refuses_a_bad_valids_pkl(tmp_path, capsys, val_ids, message):
    folder = tmp_path / "V"
    vectors = {c: [[float(c)]] for c in range(6)}
    save_dataset(str(folder), vectors, vectors, [0, 1, 2, 3], [4, 5], val_ids)
    assert run("check", folder) == 2
    assert "valids.pkl" in (err := one_error_line(capsys)) and message in err


def test_arrays_val_writes_valids_and_is_checked(tmp_path, capsys):
    labels = np.repeat(np.arange(1, 6), 2)
    for name, value in (("x", np.random.default_rng(0).uniform(0, 1, (10, 3))), ("y", labels),
                        ("t", np.eye(5)), ("tl", np.arange(1, 6))):
        np.save(tmp_path / f"{name}.npy", value)
    argv = ["arrays", "--images", tmp_path / "x.npy", "--image-labels", tmp_path / "y.npy",
            "--texts", tmp_path / "t.npy", "--text-labels", tmp_path / "tl.npy", "--unseen", "5"]
    assert run(*argv, "--val", "2,4", "--out", tmp_path / "A") == 0
    assert load_pickle(str(tmp_path / "A" / "valids.pkl")) == [2, 4]
    assert run(*argv, "--val", "2,5", "--out", tmp_path / "B") == 2
    assert "--val: class 5 is not a seen class" in one_error_line(capsys)
    assert not os.path.exists(tmp_path / "B")
    assert run(*argv, "--out", tmp_path / "A", "--force") == 0          # a folder with valids.pkl is a dataset
    assert not os.path.exists(tmp_path / "A" / "valids.pkl")


# ---------------------------------------------------------------- arrays

@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(1)
    y = np.array([7, 3, 9, 3, 7, 5, 9, 5, 7])
    t_labels = np.array([3, 5, 7, 9, 3, 9])
    x = rng.uniform(0, 1, (len(y), 4))
    t = rng.normal(size=(len(t_labels), 3))
    return dict(x=x, y=y, t=t, tl=t_labels, dir=tmp_path, out=tmp_path / "A")


def _expected_arrays(a, folder, seen, unseen):
    ds = load_dataset(str(folder))
    assert ds.train_ids == seen and ds.test_ids == unseen
    for c in seen + unseen:
        np.testing.assert_allclose(ds.images[c], a["x"][a["y"] == c], rtol=1e-6)
        np.testing.assert_allclose(ds.text[c], a["t"][a["tl"] == c], rtol=1e-6)


def test_arrays_npy(arrays):
    d = arrays["dir"]
    for name in ("x", "y", "t", "tl"):
        np.save(d / f"{name}.npy", arrays[name])
    assert run("arrays", "--images", d / "x.npy", "--image-labels", d / "y.npy", "--texts", d / "t.npy",
               "--text-labels", d / "tl.npy", "--unseen", "9,5", "--out", arrays["out"]) == 0
    _expected_arrays(arrays, arrays["out"], [3, 7], [5, 9])


def test_arrays_one_npz_with_keys(arrays, capsys):
    f = arrays["dir"] / "all.npz"
    np.savez(f, X=arrays["x"], y=arrays["y"], T=arrays["t"], t=arrays["tl"])
    assert run("arrays", "--images", f"{f}:X", "--image-labels", f"{f}:y", "--texts", f"{f}:T",
               "--text-labels", f"{f}:t", "--unseen", "3", "--seen", "5,9", "--out", arrays["out"]) == 0
    _expected_arrays(arrays, arrays["out"], [5, 9], [3])
    assert "left out classes [7]" in capsys.readouterr().out


def test_arrays_csv_with_and_without_header(arrays):
    d = arrays["dir"]
    np.savetxt(d / "x.csv", arrays["x"], delimiter=",", header="a,b,c,d", comments="")
    np.savetxt(d / "y.csv", arrays["y"], delimiter=",", fmt="%d")
    np.savetxt(d / "t.csv", arrays["t"], delimiter=",")
    np.savetxt(d / "tl.csv", arrays["tl"], delimiter=",", fmt="%d", header="label", comments="")
    assert run("arrays", "--images", d / "x.csv", "--image-labels", d / "y.csv", "--texts", d / "t.csv",
               "--text-labels", d / "tl.csv", "--unseen", "7", "--out", arrays["out"]) == 0
    _expected_arrays(arrays, arrays["out"], [3, 5, 9], [7])


BAD_ARRAYS = {
    "lengths differ": (dict(y=np.array([7, 3, 9])), [], "--image-labels has 3 labels but --images has 9 rows"),
    "class without images": (dict(tl=np.array([3, 5, 7, 9, 3, 11])), [], "class 11 has texts but no images"),
    "unseen class unknown": ({}, ["--unseen", "4"], "--unseen lists class 4, which has no images and no texts"),
    "overlapping split": ({}, ["--seen", "3,5,9"], "in both --seen and --unseen"),
    "fractional labels": (dict(y=np.array([7, 3, 9, 3, 7, 5, 9, 5, 7.5])), [], "whole-number"),
    "bad id list": ({}, ["--unseen", "3;7"], "separated by commas"),
    "all unseen": ({}, ["--unseen", "3,5,7,9"], "no seen classes"),
    "object array": (dict(x=np.array([None] * 9, dtype=object)), [], "not a plain numeric array"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_arrays_bad_input(arrays, capsys, case):
    changes, flags, message = BAD_ARRAYS[case]
    a = {**arrays, **changes}
    d = arrays["dir"]
    for name in ("x", "y", "t", "tl"):
        np.save(d / f"{name}.npy", a[name], allow_pickle=True)
    args = dict(zip(flags[::2], flags[1::2]))
    args.setdefault("--unseen", "9")
    argv = ["arrays", "--images", d / "x.npy", "--image-labels", d / "y.npy", "--texts", d / "t.npy",
            "--text-labels", d / "tl.npy", "--out", arrays["out"]]
    for k, v in args.items():
        argv += [k, v]
    assert run(*argv) == 2
    assert message in one_error_line(capsys)
    assert not os.path.exists(arrays["out"])


def test_arrays_npz_with_several_arrays_needs_a_key(arrays, capsys):
    f = arrays["dir"] / "all.npz"
    np.savez(f, X=arrays["x"], y=arrays["y"])
    assert run("arrays", "--images", f, "--image-labels", f"{f}:y", "--texts", f"{f}:X",
               "--text-labels", f"{f}:y", "--unseen", "3", "--out", arrays["out"]) == 2
    assert ":KEY" in one_error_line(capsys)


# ---------------------------------------------------------------- synthetic

@pytest.mark.parametrize("like", ["CUB", "FLO", "AWA", "MFEAT"])
def test_synthetic_has_the_paper_shape(like):
    p = synthetic.PROFILES[like]
    text, images, train, test = synthetic.generate(like, seed=0)
    assert sorted(text) == sorted(images) == list(range(p.n_classes))
    assert len(test) == p.n_unseen and len(train) == p.n_classes - p.n_unseen
    assert not set(train) & set(test)
    assert {v.shape[1] for v in text.values()} == {p.text_dim}
    assert {v.shape[1] for v in images.values()} == {p.image_dim}
    n_img = [len(v) for v in images.values()]
    n_txt = [len(v) for v in text.values()]
    assert abs(np.mean(n_img) - p.images_per_class) < 0.1 * p.images_per_class
    assert abs(np.mean(n_txt) - p.texts_per_class) <= 0.1 * p.texts_per_class
    assert min(float(v.min()) for v in images.values()) >= 0.0   # the generator ends in a ReLU
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in [*text.values(), *images.values()])


def test_synthetic_is_deterministic():
    a = synthetic.generate("FLO", seed=5, images_per_class=20)
    b = synthetic.generate("FLO", seed=5, images_per_class=20)
    c = synthetic.generate("FLO", seed=6, images_per_class=20)
    assert a[2:] == b[2:]
    for x, y in zip(a[:2], b[:2]):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert not np.array_equal(a[1][0], c[1][0])


def _ridge_prec50(text, images, train, test):
    """Prec@50 of a linear text -> image map fitted on the seen classes (numpy only)."""
    x = np.concatenate([np.repeat(text[c].mean(0, keepdims=True), len(images[c]), 0) for c in train])
    y = np.concatenate([images[c] for c in train])
    w = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ y)
    q = np.concatenate([text[c] for c in test]) @ w
    q_lab = np.concatenate([[c] * len(text[c]) for c in test])
    g = np.concatenate([images[c] for c in test])
    g_lab = np.concatenate([[c] * len(images[c]) for c in test])
    unit = lambda m: m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
    top = np.argsort(-(unit(q) @ unit(g).T), axis=1, kind="stable")[:, :50]
    hits = (g_lab[top] == q_lab[:, None]).mean(1)
    return float(np.mean([hits[q_lab == c].mean() for c in test]))


def test_synthetic_zero_shot_is_learnable_but_not_trivial():
    data = synthetic.generate("FLO", seed=0, images_per_class=40)
    chance = 1 / len(data[3])
    score = _ridge_prec50(*data)
    assert 3 * chance < score < 0.9
    assert _ridge_prec50(*synthetic.generate("FLO", seed=0, noise=3.0, images_per_class=40)) < score


def test_synthetic_cli_writes_cub_folder(tmp_path, capsys):
    out = tmp_path / "CUB_SYN"
    assert run("synthetic", "--like", "CUB", "--out", out, "--seed", "2") == 0
    ds = load_dataset(str(out))
    assert len(ds.train_ids) == 150 and len(ds.test_ids) == 50
    assert ds.text_dim == 1024 and ds.image_dim == 2048
    expected = synthetic.generate("CUB", seed=2)
    np.testing.assert_array_equal(ds.images[7], expected[1][7])
    assert "150" in capsys.readouterr().out


def test_synthetic_small_override(tmp_path):
    out = tmp_path / "S"
    assert run("synthetic", "--like", "AWA", "--out", out, "--images-per-class", "3", "--texts-per-class", "2",
               "--noise", "0.5") == 0
    ds = load_dataset(str(out))
    assert ds.text_dim == 85 and max(len(v) for v in ds.images.values()) <= 4


@pytest.mark.parametrize("flags, message", [(["--noise", "-1"], "--noise"), (["--images-per-class", "0"], "at least 1")])
def test_synthetic_bad_flags(tmp_path, capsys, flags, message):
    assert run("synthetic", "--like", "AWA", "--out", tmp_path / "S", *flags) == 2
    assert message in one_error_line(capsys)


# ---------------------------------------------------------------- writing safely

def test_existing_folder_is_refused_without_force(gbu, capsys):
    gbu["out"].mkdir(parents=True)
    (gbu["out"] / "notes.txt").write_text("mine")
    assert run(*gbu_args(gbu)) == 2
    assert "--force" in one_error_line(capsys)
    assert run(*gbu_args(gbu, "--force")) == 2
    assert "replaces only a dataset folder" in one_error_line(capsys)
    assert os.listdir(gbu["out"]) == ["notes.txt"]


def test_empty_existing_folder_is_used(gbu):
    gbu["out"].mkdir(parents=True)
    assert run(*gbu_args(gbu)) == 0
    assert sorted(os.listdir(gbu["out"])) == sorted(FILES)


def test_force_replaces_a_dataset_and_a_failed_run_keeps_it(gbu, capsys):
    save_dataset(str(gbu["out"]), {0: [[1.0]], 1: [[2.0]]}, {0: [[1.0]], 1: [[2.0]]}, [0], [1])
    _resave(gbu["splits"], test_unseen_loc=np.array([[99]]))
    assert run(*gbu_args(gbu, "--force")) == 2
    one_error_line(capsys)
    assert load_dataset(str(gbu["out"])).train_ids == [0]            # untouched
    _resave(gbu["splits"], test_unseen_loc=np.array(TEST_UNSEEN)[:, None])
    assert run(*gbu_args(gbu, "--force")) == 0
    assert load_dataset(str(gbu["out"])).train_ids == [0, 1, 3]
    assert os.listdir(gbu["out"].parent) == ["G"]                     # no temporary folders left


def test_out_is_a_file(gbu, capsys):
    gbu["out"].parent.mkdir(parents=True)
    gbu["out"].write_text("x")
    assert run(*gbu_args(gbu)) == 2
    assert "is a file" in one_error_line(capsys)


def test_written_folder_is_readable_by_others(gbu):
    assert run(*gbu_args(gbu)) == 0
    assert os.stat(gbu["out"]).st_mode & 0o777 == 0o777 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- check

def test_check_summarises_a_valid_folder(gbu, capsys):
    assert run(*gbu_args(gbu)) == 0
    capsys.readouterr()
    assert run("check", gbu["out"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert lines["classes"] == ["3", "2"]
    assert lines["images"] == ["8", "4"]
    assert lines["texts"] == ["3", "2"]
    assert "fewer than K = 50" in out          # 4 unseen images: a problem, not an error


def test_check_of_the_bundled_demo_as_the_readme_shows_it(capsys):
    assert run("check", os.path.join(ROOT, "datasets", "MFEAT")) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}
    assert lines["classes"] == ["7", "3"] and lines["images"] == ["1400", "600"]
    assert "warnings: none" in out


def test_check_reports_negative_images_and_unused_classes(tmp_path, capsys):
    folder = tmp_path / "N"
    save_dataset(str(folder), {0: [[1.0]], 1: [[2.0]], 2: [[3.0]]},
                 {0: [[-1.0, 0.0]], 1: [[1.0, 1.0]], 2: [[0.0, 0.0]]}, [0], [1])
    assert run("check", folder) == 0
    out = capsys.readouterr().out
    assert "ReLU" in out and "neither split" in out and "all zeros" in out and "only one unseen class" in out


def test_check_invalid_folder_exits_2(tmp_path, capsys):
    folder = tmp_path / "BAD"
    save_dataset(str(folder), {0: [[1.0]], 1: [[2.0]]}, {0: [[1.0]], 1: [[2.0]]}, [0, 1], [1])
    assert run("check", folder) == 2
    assert "disjoint" in one_error_line(capsys)
    assert run("check", tmp_path / "nowhere") == 2
    assert "not found" in one_error_line(capsys)


def test_pickles_hold_plain_types(gbu):
    assert run(*gbu_args(gbu)) == 0
    with open(os.path.join(gbu["out"], "trainids.pkl"), "rb") as f:
        assert pickle.load(f) == [0, 1, 3]


# ---------------------------------------------------------------- command line and configs

def test_module_cli_bad_input_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zscrgan", "prepare", "gbu", "--res101", str(tmp_path / "no.mat"),
                           "--att-splits", str(tmp_path / "no.mat"), "--out", str(tmp_path / "X")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: prepare gbu: {tmp_path / 'no.mat'} not found"]


def test_usage_error_is_one_line(capsys):
    assert run("gbu", "--res101", "x.mat") == 2
    assert "required" in one_error_line(capsys)


@pytest.mark.parametrize("name", ["AWA1", "AWA2", "CUB", "FLO", "NAB_SCS", "NAB_SCE", "WIKI"])
def test_dataset_configs_load(name):
    cfg = config_lib.load_config(dataset=name)
    assert cfg.dataset == name


# ---------------------------------------------------------------- round trip

@pytest.mark.slow
@pytest.mark.parametrize("source", ["gbu", "synthetic"])
def test_round_trip_prepare_then_train_one_round(gbu, tmp_path, source, capsys):
    from zscrgan import cli
    datasets = tmp_path / "datasets"
    if source == "gbu":
        assert run(*gbu_args(gbu)) == 0
        name = "G"
    else:
        name = "SYN"
        assert run("synthetic", "--like", "FLO", "--out", datasets / name,
                   "--images-per-class", "4", "--texts-per-class", "2") == 0
    results = tmp_path / "results"
    status = cli.main(["--dataset", name, "--datasets_dir", str(datasets), "--results_dir", str(results),
                       "--logs_dir", str(tmp_path / "logs"), "--gf_dim", "8", "--df_dim", "8", "--embed_dim", "4",
                       "--z_dim", "2", "--batch_size", "4", "--e_steps", "2", "--m_steps", "2", "--epochs", "1",
                       "--jit_compile", "false"],  # the question is the folder, not XLA's kernels
                      prog="run_exp.py", only="train")
    assert status == 0, capsys.readouterr().err[-2000:]
    assert glob.glob(str(results / f"{name}_res" / "acc*.pkl"))
