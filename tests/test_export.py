"""`zscrgan export`: the SavedModel, loaded by TensorFlow alone, ranks as the trainer does."""
import glob
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from conftest import tool_here, tool_process

pytestmark = pytest.mark.slow

# Runs in a fresh process whose cwd is a temp folder and whose sys.path lacks the repository.
ALONE = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    import tensorflow as tf
    try:
        import zscrgan
        sys.exit("zscrgan is importable")
    except ImportError:
        pass
    model_dir, data_dir, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = tf.saved_model.load(model_dir)
    load = lambda name: pickle.load(open(f"{data_dir}/{name}", "rb"), encoding="latin1")
    texts, images, test = load("txt_embed_dict.pkl"), load("image_embed_dict.pkl"), set(load("testids.pkl"))
    t = np.concatenate([texts[c] for c in texts if c in test]).astype(np.float32)
    v = np.concatenate([images[c] for c in images if c in test]).astype(np.float32)
    noise = np.load(f"{model_dir}/check_noise.npz")
    q = m.signatures["embed_text"](text=t, eps=noise["eps"], z=noise["z"])["embedding"]
    g = m.signatures["embed_image"](image=v)["embedding"]
    tf_rows = tf.math.top_k(tf.matmul(q, g, transpose_b=True), k=k).indices.numpy()
    scores = np.sum(q.numpy().astype(np.float64)[:, None, :] * g.numpy().astype(np.float64)[None], axis=-1)
    np_rows = np.argsort(-scores, 1, kind="stable")[:, :k]
    np.savez(sys.argv[4], tf_rows=tf_rows, np_rows=np_rows)
""")


def test_export_writes_signatures_and_its_description(tiny_export):
    _, model = tiny_export
    meta = yaml.safe_load((model / "zscrgan.yml").read_text())
    assert (meta["text_dim"], meta["image_dim"], meta["embed_dim"], meta["z_dim"]) == (6, 5, 4, 2)
    assert meta["dataset"] == "TINY" and meta["checkpoint"]["round"] in (1, 2)
    assert "prec_at_5" in meta["checkpoint"]["scores"] and meta["config"]["top_k"] == 5
    assert "truncated" in meta["noise"]["eps"] and meta["self_check"]["identical"] is True
    noise = np.load(model / "check_noise.npz")
    assert noise["eps"].shape == (9, 4) and noise["z"].shape == (9, 2)  # 3 unseen classes x 3 texts


def test_tensorflow_alone_ranks_as_the_trainer_and_retrieve_noise(tiny_export, tmp_path, capsys):
    base, model = tiny_export
    data = base / "datasets" / "TINY"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    script = tmp_path / "alone.py"
    script.write_text(ALONE)
    proc = subprocess.run([sys.executable, str(script), str(model), str(data), "5", str(tmp_path / "rows.npz")],
                          capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = np.load(tmp_path / "rows.npz")
    # The trainer's ranking of the same checkpoint with the same noise: --eval_only draws from the
    # restored generator exactly as the export's self-check did.
    proc = tool_here(capsys, "train", "--dataset", "TINY", "--datasets_dir", base / "datasets", "--logs_dir",
                     base / "logs", "--results_dir", base / "res", "--eval_only", "--checkpoint", "best")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dump, = glob.glob(str(base / "res" / "TINY_res" / "eval" / "acc*.pkl"))
    with open(dump, "rb") as f:
        trainer = np.array([next(iter(r.values())) for r in pickle.load(f)])
    labels = np.repeat([4, 5, 6], 6)  # gallery classes in order, 6 images each
    assert np.array_equal(labels[rows["tf_rows"]], trainer)
    out = tmp_path / "ranking.csv"
    proc = tool_process("retrieve", model, "--dataset", "TINY", "--datasets_dir", base / "datasets",  # Keras-less
                        "--results_dir", tmp_path / "res", "--noise", model / "check_noise.npz", "--k", 5, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert np.array_equal(table[:, 2].reshape(9, 5).astype(int), rows["np_rows"])
    assert glob.glob(str(tmp_path / "res" / "TINY_res" / "retrieve" / "acc*.pkl"))


def test_export_refuses_to_overwrite_or_a_missing_run(tiny_export, tmp_path, capsys):
    base, model = tiny_export
    before = sorted(os.listdir(model))
    flags = ["--dataset", "TINY", "--logs_dir", base / "logs", "--datasets_dir", base / "datasets"]
    for args, words in ((flags + ["--out", model], "exists"),
                        (["--dataset", "NONE", "--logs_dir", base / "logs", "--out", tmp_path / "m"], "no run")):
        proc = tool_here(capsys, "export", *args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert words in proc.stderr
    assert sorted(os.listdir(model)) == before and not (tmp_path / "m").exists()


def test_a_failed_self_check_writes_nothing(tiny_export, tmp_path, monkeypatch, capsys):
    """Exported embeddings that differ from the trainer's: exit 1, one line, no folder."""
    from zscrgan import cli
    from zscrgan.toolkit import savedmodel as exported
    base, _ = tiny_export
    original, rng = exported.Model.embed_image, np.random.default_rng(0)
    monkeypatch.setattr(exported.Model, "embed_image",
                        lambda self, v: original(self, v) + rng.normal(size=(len(v), 4)).astype(np.float32))
    status = cli.main(["--dataset", "TINY", "--logs_dir", str(base / "logs"), "--datasets_dir",
                       str(base / "datasets"), "--out", str(tmp_path / "m")], only="export")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and err[-1].startswith("error: self-check failed")
    assert os.listdir(tmp_path) == []
