import pickle
import struct

import numpy as np
import pytest

from conftest import make_dataset
from zscrgan.data.dataset import DatasetError, dataset_warnings, load_dataset, load_pickle, save_dataset


def py2_pickle(obj):
    """Bytes of `obj` as Python 2's cPickle (protocol 2) wrote them: numpy buffers as py2 str,
    numpy's module named numpy.core.multiarray. Enough for dicts, lists, ints and arrays."""
    out = bytearray(b"\x80\x02")

    def emit(x):
        if isinstance(x, dict):
            out.extend(b"}(")
            for k, v in x.items():
                emit(k), emit(v)
            out.extend(b"u")
        elif isinstance(x, list):
            out.extend(b"](")
            for v in x:
                emit(v)
            out.extend(b"e")
        elif isinstance(x, bool):
            out.extend(b"\x88" if x else b"\x89")
        elif isinstance(x, int):
            out.extend(b"J" + struct.pack("<i", x))
        elif x is None:
            out.extend(b"N")
        elif isinstance(x, bytes):  # a py2 str
            out.extend(b"T" + struct.pack("<I", len(x)) + x)
        elif isinstance(x, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            out.extend(b"J\x00\x00\x00\x00\x85U\x01b\x87R(")
            emit(1), emit_tuple(x.shape)
            out.extend(b"cnumpy\ndtype\nU\x02f4\x89\x88\x87R(")
            emit(3), out.extend(b"U\x01<"), emit(None), emit(None), emit(None), emit(-1), emit(-1), emit(0)
            out.extend(b"tb")
            emit(False), emit(np.ascontiguousarray(x, "<f4").tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(x))

    def emit_tuple(t):
        out.extend(b"(")
        for v in t:
            emit(int(v))
        out.extend(b"t")

    emit(obj)
    out.extend(b".")
    return bytes(out)


def write_py2_folder(folder, text, images, train, test):
    folder.mkdir(parents=True)
    for name, obj in (("txt_embed_dict.pkl", text), ("image_embed_dict.pkl", images),
                      ("trainids.pkl", train), ("testids.pkl", test)):
        (folder / name).write_bytes(py2_pickle(obj))


def test_python2_pickles_load_with_lists_or_arrays(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    text = {0: [a[0], a[1]], 1: a + 1, 2: a + 2}  # a list of vectors or a 2-D array
    images = {0: np.ones((3, 4), np.float32), 1: np.zeros((1, 4), np.float32), 2: np.full((2, 4), 2, np.float32)}
    write_py2_folder(tmp_path / "PY2", text, images, [0, 1], [2])
    with pytest.raises(UnicodeDecodeError):  # why encoding="latin1" is needed
        pickle.loads((tmp_path / "PY2" / "txt_embed_dict.pkl").read_bytes())
    ds = load_dataset(str(tmp_path / "PY2"))
    np.testing.assert_array_equal(ds.text[0], a)
    np.testing.assert_array_equal(ds.text[2], a + 2)
    assert ds.images[1].shape == (1, 4) and ds.text[0].dtype == np.float32
    assert (ds.train_ids, ds.test_ids, ds.text_dim, ds.image_dim) == ([0, 1], [2], 3, 4)


def test_dicts_keep_their_stored_order_and_save_dataset_stores_ascending_ids(tmp_path):
    """The stored key order is the evaluation's query and gallery order (docs/algorithm.md §7)."""
    vec = lambda v: np.full((1, 3), v, np.float32)
    write_py2_folder(tmp_path / "PY2", {2: vec(2), 0: vec(0), 1: vec(1)}, {1: vec(1), 2: vec(2), 0: vec(0)}, [1, 0], [2])
    ds = load_dataset(str(tmp_path / "PY2"))
    assert (list(ds.text), list(ds.images)) == ([2, 0, 1], [1, 2, 0])
    save_dataset(str(tmp_path / "S"), ds.text, ds.images, ds.train_ids, ds.test_ids)
    saved = load_dataset(str(tmp_path / "S"))
    assert (list(saved.text), list(saved.images), saved.train_ids) == ([0, 1, 2], [0, 1, 2], [1, 0])


def test_save_then_load_round_trip(tmp_path):
    folder = make_dataset(str(tmp_path / "D"))
    ds = load_dataset(folder)
    assert ds.name == "D" and ds.train_ids == [0, 1, 2, 3] and ds.test_ids == [4, 5, 6]
    assert all(v.shape == (2, 6) for v in ds.text.values())


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused_and_the_code_does_not_run(tmp_path):
    folder = make_dataset(str(tmp_path / "D"))
    marker = tmp_path / "ran"
    with open(f"{folder}/trainids.pkl", "wb") as f:
        pickle.dump([RunsCode(str(marker))], f, protocol=2)
    with pytest.raises(DatasetError, match=r"trainids\.pkl.*refused"):
        load_dataset(folder)
    assert not marker.exists()


@pytest.mark.parametrize("mutate,match", [
    (lambda t, i, tr, te: (t, i, tr, tr[:1] + te), "share classes"),
    (lambda t, i, tr, te: ({k: v for k, v in t.items() if k != 5}, i, tr, te), "class 5"),
    (lambda t, i, tr, te: (t, {**i, 2: np.zeros((0, 5))}, tr, te), "class 2 has no vectors"),
    (lambda t, i, tr, te: (t, {**i, 2: np.zeros((3, 7))}, tr, te), "different lengths"),
    (lambda t, i, tr, te: ({**t, 1: np.full((2, 6), np.nan)}, i, tr, te), "NaN"),
    (lambda t, i, tr, te: (t, {**i, 0: np.full((2, 5), np.inf)}, tr, te), "infinite"),
    (lambda t, i, tr, te: (list(t.values()), i, tr, te), "must hold a dict"),
    (lambda t, i, tr, te: (t, i, {"a": 1}, te), "list of class ids"),
    (lambda t, i, tr, te: (t, i, tr, ["x"]), "integers"),
])
def test_validation_names_the_file_and_problem(tmp_path, mutate, match):
    folder = make_dataset(str(tmp_path / "D"))
    ds = load_dataset(folder)
    text, images, tr, te = mutate(dict(ds.text), dict(ds.images), list(ds.train_ids), list(ds.test_ids))
    for name, obj in (("txt_embed_dict.pkl", text), ("image_embed_dict.pkl", images),
                      ("trainids.pkl", tr), ("testids.pkl", te)):
        with open(f"{folder}/{name}", "wb") as f:
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(DatasetError, match=match):
        load_dataset(folder)


def test_missing_folder_missing_file_and_truncated_pickle(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(str(tmp_path / "nope"))
    folder = make_dataset(str(tmp_path / "D"))
    data = open(f"{folder}/image_embed_dict.pkl", "rb").read()
    with open(f"{folder}/image_embed_dict.pkl", "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="not a readable pickle"):
        load_pickle(f"{folder}/image_embed_dict.pkl")
    (tmp_path / "D" / "testids.pkl").unlink()
    with pytest.raises(DatasetError, match=r"testids\.pkl is missing"):
        load_dataset(folder)


def test_a_clean_dataset_has_no_warnings(tmp_path):
    assert dataset_warnings(load_dataset(make_dataset(str(tmp_path / "D"))), k=5) == []


def test_warnings_for_what_the_reference_allowed_but_cannot_work(tmp_path):
    """Negative image features (the generator ends in a ReLU), one unseen class (Prec@K is 1.0
    whatever the model), a gallery smaller than K."""
    text = {c: [[float(c), 1.0]] for c in range(3)}
    images = {0: [[0.5, 1.0]], 1: [[0.2, 0.3]], 2: [[-0.75, 1.0], [0.1, 0.2]]}
    save_dataset(str(tmp_path / "D"), text, images, [0, 1], [2])
    found = dataset_warnings(load_dataset(str(tmp_path / "D")), k=5)
    assert len(found) == 3, found
    assert "gallery has 2 images, fewer than K = 5" in found[0]
    assert "only one unseen class (2)" in found[1] and "Prec@5 is 1.0 for any model" in found[1]
    assert "go down to -0.75" in found[2] and "ReLU" in found[2]
