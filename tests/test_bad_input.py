"""Bad input to run_exp.py: exit status 2, one line on stderr naming the problem, no
traceback, and no output of an earlier run changed. Input is checked before TensorFlow
is imported, so each case takes a fraction of a second."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, TINY_FLAGS, make_dataset
from zscrgan.data.dataset import FILES

DATA = os.path.join("datasets", "TINY")


class RunsCode:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def base(tmp_path):
    """A dataset and the outputs of an earlier run that bad input must leave alone."""
    make_dataset(str(tmp_path / DATA))
    logs, res = tmp_path / "logs" / "TINY_logs", tmp_path / "res" / "TINY_res"
    logs.mkdir(parents=True)
    res.mkdir(parents=True)
    (logs / "history.csv").write_text("round,prec_at_5\n1,0.5\n")
    (res / "acc0.5.pkl").write_bytes(pickle.dumps([{4: [4, 4, 4, 4, 4]}], protocol=2))
    return tmp_path


def run(base, *args):
    cmd = [sys.executable, os.path.join(ROOT, "run_exp.py"), "--datasets_dir", str(base / "datasets"),
           "--results_dir", str(base / "res"), "--logs_dir", str(base / "logs"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(base))


def snapshot(base):
    out = {}
    for root, _, files in os.walk(base):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, base)] = f.read()
    return out


def assert_refused(base, args, *words):
    before = snapshot(base)
    proc = run(base, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0]
    assert snapshot(base) == before
    return lines[0]


def write(base, fname, obj):
    with open(base / DATA / fname, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def load(base, fname):
    with open(base / DATA / fname, "rb") as f:
        return pickle.load(f)


TRAIN = ["--dataset", "TINY", "--epochs", "1", *TINY_FLAGS]


def test_dataset_folder_missing(base):
    assert_refused(base, ["--dataset", "NOPE", "--epochs", "1"], "dataset 'NOPE' not found", "TINY")


@pytest.mark.parametrize("fname", FILES)
def test_a_file_missing(base, fname):
    os.remove(base / DATA / fname)
    assert_refused(base, TRAIN, fname, "missing")


def test_truncated_pickle(base):
    path = base / DATA / "image_embed_dict.pkl"
    path.write_bytes(path.read_bytes()[:100])
    assert_refused(base, TRAIN, "image_embed_dict.pkl", "not a readable pickle")


def test_a_pickle_that_would_run_code_is_refused_unrun(base):
    marker = base / "code_ran"
    write(base, "trainids.pkl", RunsCode(marker))
    assert_refused(base, TRAIN, "trainids.pkl", "refused")
    assert not marker.exists()


@pytest.mark.parametrize("fname, obj, words", [
    ("txt_embed_dict.pkl", [[0.0, 1.0]], "must hold a dict"),
    ("image_embed_dict.pkl", {0: "vectors"}, "must map to a list"),
    ("trainids.pkl", {0: 1}, "must hold a list of class ids"),
    ("testids.pkl", ["4", "5"], "class ids must be integers"),
])
def test_wrong_container_types(base, fname, obj, words):
    write(base, fname, obj)
    assert_refused(base, TRAIN, fname, words)


def test_vectors_of_different_lengths_in_one_class(base):
    text = load(base, "txt_embed_dict.pkl")
    text[0] = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 2.0]]
    write(base, "txt_embed_dict.pkl", text)
    assert_refused(base, TRAIN, "txt_embed_dict.pkl", "different lengths")


def test_vectors_of_different_lengths_across_classes(base):
    images = load(base, "image_embed_dict.pkl")
    images[3] = np.ones((4, 9), np.float32)
    write(base, "image_embed_dict.pkl", images)
    assert_refused(base, TRAIN, "image_embed_dict.pkl", "different lengths")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values(base, value):
    images = load(base, "image_embed_dict.pkl")
    images[5][1, 2] = value
    write(base, "image_embed_dict.pkl", images)
    assert_refused(base, TRAIN, "image_embed_dict.pkl", "class 5", "NaN or infinite")


def test_a_class_with_no_vectors(base):
    text = load(base, "txt_embed_dict.pkl")
    text[2] = []
    write(base, "txt_embed_dict.pkl", text)
    assert_refused(base, TRAIN, "txt_embed_dict.pkl", "class 2 has no vectors")


def test_seen_and_unseen_classes_overlap(base):
    write(base, "testids.pkl", [3, 4, 5, 6])
    assert_refused(base, TRAIN, "share classes [3]")


def test_a_split_id_absent_from_the_dicts(base):
    write(base, "trainids.pkl", [0, 1, 2, 3, 99])
    assert_refused(base, TRAIN, "trainids.pkl", "class 99")


def test_fewer_gallery_images_than_k_is_allowed_with_a_warning(base):
    proc = run(base, "--dataset", "TINY", "--run_name", "few", "--epochs", "0", *TINY_FLAGS[:-1], "50")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning: gallery has 12 images, fewer than K = 50" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_config_key_in_a_file(base):
    (base / "my.yml").write_text("batch_size: 4\nbatchsize: 8\n")
    assert_refused(base, [*TRAIN, "--config", str(base / "my.yml")], "unknown key 'batchsize'")


def test_unknown_option(base):
    assert_refused(base, [*TRAIN, "--batchsize", "8"], "unrecognized argument --batchsize: did you mean --batch_size?")


@pytest.mark.parametrize("args, words", [
    (["--epochs", "2.5"], "--epochs: expected int"),
    (["--jit_compile", "maybe"], "--jit_compile: expected bool"),
    (["--generator_lr", "fast"], "--generator_lr: expected float"),
])
def test_wrong_type_of_a_flag(base, args, words):
    assert_refused(base, [*TRAIN, *args], words)


def test_wrong_type_in_a_config_file(base):
    (base / "my.yml").write_text("batch_size: '4'\n")
    assert_refused(base, [*TRAIN, "--config", str(base / "my.yml")], "'batch_size' must be int")


def test_an_out_of_range_value(base):
    """One process: the range checks themselves are tests/test_config.py's, in-process."""
    assert_refused(base, [*TRAIN, "--clip_val=0"], "clip_val = 0.0 is out of range")


def test_a_negative_number_after_a_space_gets_a_hint(base):
    assert_refused(base, [*TRAIN, "--generator_lr", "-1e-4"], "--generator_lr=-1e-4")
