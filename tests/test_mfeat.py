"""The bundled datasets/MFEAT folder: split, shapes, scale, and reproducibility."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from zscrgan.data.dataset import FILES, load_dataset  # noqa: E402

MFEAT = os.path.join(ROOT, "datasets", "MFEAT")


@pytest.fixture(scope="module")
def ds():
    return load_dataset(MFEAT)


def test_split(ds):
    assert len(ds.train_ids) == 7 and len(ds.test_ids) == 3
    assert not set(ds.train_ids) & set(ds.test_ids)
    assert sorted(ds.train_ids + ds.test_ids) == list(range(10))
    assert ds.train_ids == sorted(ds.train_ids) and ds.test_ids == sorted(ds.test_ids)
    assert sorted(ds.text) == sorted(ds.images) == list(range(10))


def test_shapes_and_scale(ds):
    for c in range(10):
        assert ds.text[c].shape == (200, 76)
        assert ds.images[c].shape == (200, 240)
        assert ds.text[c].dtype == ds.images[c].dtype == np.float32
        assert ds.images[c].min() >= 0.0 and ds.images[c].max() <= 1.0


# The CSVs: the bundled copy, or another folder of them named by $ZSCRGAN_MFEAT_SOURCE.
SOURCE = os.environ.get("ZSCRGAN_MFEAT_SOURCE", os.path.join(ROOT, "datasets", "sources", "uci-mfeat"))


def test_rebuild_is_byte_identical(tmp_path):
    out = tmp_path / "MFEAT"
    subprocess.run([sys.executable, os.path.join(ROOT, "datasets", "build_mfeat.py"),
                    "--source", SOURCE, "--out", str(out)],
                   check=True, capture_output=True)
    for fname in FILES + ("thumbnails.npz",):
        with open(os.path.join(MFEAT, fname), "rb") as a, open(out / fname, "rb") as b:
            assert a.read() == b.read(), fname


def test_thumbnails_are_the_gallery_images(ds):
    """thumbnails.npz: {digit as text: (200, 16, 15) pixel counts}, row i = image i of the digit."""
    with np.load(os.path.join(MFEAT, "thumbnails.npz")) as f:
        assert sorted(f.files, key=int) == [str(d) for d in range(10)]
        for d in range(10):
            assert f[str(d)].shape == (200, 16, 15)
            assert np.allclose(f[str(d)].reshape(200, -1) / 6.0, ds.images[d])
