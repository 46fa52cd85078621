"""Shared fixtures: tiny datasets and configs built by the tests themselves, and what two runs
of the same thing must share."""
import collections
import csv
import glob
import os
import re
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tests' own XLA compile cache (zscrgan/run/compile_cache.py), not the user's: shared by the
# session's runs and its subprocesses, kept between sessions in pytest's gitignored folder.
os.environ["ZSCRGAN_COMPILE_CACHE"] = os.path.join(ROOT, ".pytest_cache", "xla")
os.environ["TF_XLA_FLAGS"] = " ".join(flag for flag in os.environ.get("TF_XLA_FLAGS", "").split()
                                      if not flag.startswith("--tf_xla_persistent_cache_directory="))

from zscrgan import config as config_lib  # noqa: E402
from zscrgan.data.dataset import save_dataset  # noqa: E402
from zscrgan.results.history import HISTORY_FILE, TIMING_COLUMNS  # noqa: E402



def pytest_collection_modifyitems(items):
    """Files with more end-to-end (slow) tests first, each file's tests in their order: pytest-xdist
    hands out whole files in this order (--dist loadfile), so the longest ones do not start last
    and leave the other worker idle at the end."""
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    first_seen = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (-slow[item.path], first_seen[item.path]))


def history_rows(logs):
    """The rows of a logs folder's history.csv as written (strings), without the timing columns."""
    with open(os.path.join(logs, HISTORY_FILE), newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def dump_bytes(results):
    """{file name: bytes} of the retrieval dumps in a results folder."""
    return {os.path.basename(p): open(p, "rb").read() for p in glob.glob(os.path.join(results, "acc*.pkl"))}


# Flags for a run that finishes in seconds.
TINY_FLAGS = ["--gf_dim", "8", "--df_dim", "8", "--embed_dim", "4", "--z_dim", "2",
              "--batch_size", "4", "--e_steps", "2", "--n_critic", "2", "--m_steps", "2",
              "--top_k", "5"]


def make_dataset(folder, n_train=4, n_test=3, text_dim=6, image_dim=5, n_text=2, n_img=4, seed=0):
    """Write a tiny learnable dataset: class c's vectors scatter around a class centre."""
    rng = np.random.default_rng(seed)
    ids = list(range(n_train + n_test))
    text, images = {}, {}
    for c in ids:
        centre_t, centre_i = rng.normal(size=text_dim), rng.uniform(0, 1, size=image_dim)
        text[c] = centre_t + 0.1 * rng.normal(size=(n_text, text_dim))
        images[c] = np.abs(centre_i + 0.05 * rng.normal(size=(n_img, image_dim)))
    save_dataset(folder, text, images, ids[:n_train], ids[n_train:])
    return folder


@pytest.fixture
def tiny_dataset(tmp_path):
    """A dataset folder `<tmp>/datasets/TINY` with 4 seen and 3 unseen classes."""
    return make_dataset(str(tmp_path / "datasets" / "TINY"))


def tiny_config(**overrides):
    """A resolved config with tiny dimensions (an EasyDict, as training uses)."""
    flags = {"dataset": "TINY", "gf_dim": 8, "df_dim": 8, "embed_dim": 4, "z_dim": 2,
             "batch_size": 4, "e_steps": 2, "n_critic": 2, "m_steps": 2, "top_k": 5,
             "jit_compile": False}
    flags.update(overrides)
    return config_lib.load_config(flags=flags)


def run_tool(name, argv):
    """`python -m zscrgan <name> argv...` in this process: its exit status."""
    from zscrgan import cli
    return cli.main([name, *map(str, argv)])


def tool_here(capsys, tool, *args):
    """tool_process's run, in this process (for tests whose question is not the process): an
    object with .returncode, .stdout and .stderr."""
    return _here(capsys, lambda: run_tool(tool, args))


def run_exp_here(capsys, base, *args):
    """run_exp_command's run (run_exp.py's command line) in this process: .returncode, .stdout, .stderr."""
    from zscrgan import cli
    cmd, _ = run_exp_command(base, *args)
    return _here(capsys, lambda: cli.main(cmd[2:], prog="run_exp.py", only="train"))


def _here(capsys, call):
    import types
    status = call()
    said = capsys.readouterr()
    return types.SimpleNamespace(returncode=status, stdout=said.out, stderr=said.err)


def unimportable(name, error="RuntimeError"):
    """A folder to put first on PYTHONPATH whose package `name` raises `error` on import."""
    folder = os.path.join(ROOT, ".pytest_cache", f"no_{name}_{error}")
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    with open(os.path.join(folder, name, "__init__.py"), "w") as f:
        f.write(f"raise {error}('{name} was imported')\n")
    return folder


def no_keras_path():
    """unimportable Keras, not as an ImportError (which TensorFlow would catch): a process of
    ours that started TensorFlow with Keras fails."""
    return unimportable("keras")


def run_exp_command(base, *args, fault=None):
    """(command, environment) running run_exp.py on `<base>/datasets/TINY`, with its results
    and logs under `base`, in a process where importing Keras fails (run/devices.py: ours
    never does); fault: a ZSCRGAN_FAULT spec (zscrgan/files.py) or None."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=no_keras_path())
    env.pop("ZSCRGAN_FAULT", None)
    if fault:
        env["ZSCRGAN_FAULT"] = fault
    cmd = [sys.executable, os.path.join(ROOT, "run_exp.py"), "--dataset", "TINY",
           "--datasets_dir", str(base / "datasets"), "--results_dir", str(base / "res"),
           "--logs_dir", str(base / "logs"), *args]
    return cmd, env


def tool_process(tool, *args, cwd=ROOT, timeout=600):
    """`python -m zscrgan <tool> args...` in a fresh process (the clone on its path, Keras not
    importable: no_keras_path): the finished process."""
    import subprocess
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([ROOT, no_keras_path()]))
    return subprocess.run([sys.executable, "-m", "zscrgan", tool, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(base folder, the run's stdout and stderr): a real 2-round run_exp.py on TINY (6 images and
    3 texts per class) in base/{datasets,logs,res}, made once per test process; tests read it and
    may add files beside it, never change it."""
    import subprocess
    base = tmp_path_factory.mktemp("tiny_run")
    make_dataset(str(base / "datasets" / "TINY"), n_img=6, n_text=3)
    cmd, env = run_exp_command(base, "--epochs", "2", *TINY_FLAGS)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(base), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return base, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def tiny_export(tiny_run):
    """(base folder, model folder): tiny_run's best checkpoint exported to base/model, by
    `python -m zscrgan export` in a process of its own (ours: TensorFlow starts without Keras)."""
    base, _ = tiny_run
    model = base / "model"
    proc = tool_process("export", "--dataset", "TINY", "--logs_dir", base / "logs", "--results_dir", base / "res",
                        "--datasets_dir", base / "datasets", "--out", model)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"self-check Prec@5 = \d\.\d{4} on ", proc.stdout), proc.stdout  # the console's 4 decimals
    return base, model


def text_overlaps(fig):
    """['a / b', ...]: the labels of a figure that overlap each other or an axes' data area.

    Labels are the figure's texts (suptitle), each axes' title (a grid's column headers), axis
    labels (a grid's row labels) and legends; a legend must also lie outside every axes, so it
    covers no curve. Boxes are matplotlib's window extents as drawn; touching is not overlapping.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [(f"figure text {t.get_text()!r}", t) for t in fig.texts]
    legends = [(f"figure legend {i}", legend) for i, legend in enumerate(fig.legends)]
    areas = []
    for i, ax in enumerate(fig.axes):
        labels += [(f"axes {i} {kind} {t.get_text()!r}", t) for kind, t in
                   (("title", ax.title), ("xlabel", ax.xaxis.label), ("ylabel", ax.yaxis.label))]
        legends += [(f"axes {i} legend", ax.get_legend())] if ax.get_legend() else []
        areas.append((f"axes {i} data area", ax.get_window_extent(renderer)))
    boxes = [(name, artist.get_window_extent(renderer)) for name, artist in labels + legends
             if artist.get_visible() and (not hasattr(artist, "get_text") or artist.get_text().strip())]
    found = []
    for i, (name, box) in enumerate(boxes):
        others = boxes[i + 1:] + areas
        found += [f"{name} / {other}" for other, area in others if _overlap(box, area)]
    return found


def _overlap(a, b, tolerance=0.5):
    """Whether two display boxes share more than `tolerance` pixels in both directions."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance)


@pytest.fixture
def drawn(monkeypatch):
    """{path: {"overlaps", "texts", "xticks"}} of every figure zscrgan.toolkit.pictures.save writes in
    the test, read before it is saved: text_overlaps (for a figure saved without a tight box, also
    the labels outside its frame), every text shown, each axes' x tick values in view."""
    from matplotlib.text import Text
    from zscrgan.toolkit import pictures
    save, checked = pictures.save, {}

    def checking_save(fig, path, dpi=100, tight=True):
        found = text_overlaps(fig)
        if not tight:  # what the PNG holds is the figure's own frame
            shown = [t for t in fig.texts + [ax.yaxis.label for ax in fig.axes] if t.get_text()]
            shown += [ax.get_legend() for ax in fig.axes if ax.get_legend()]
            found += [f"{artist} outside the figure" for artist in shown
                      if not _inside(artist.get_window_extent(), fig.bbox)]
        texts = [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
        xticks = [[x for x in ax.get_xticks() if min(ax.get_xlim()) <= x <= max(ax.get_xlim())] for ax in fig.axes]
        checked[str(path)] = {"overlaps": found, "texts": texts, "xticks": xticks}
        save(fig, path, dpi, tight)

    monkeypatch.setattr(pictures, "save", checking_save)
    return checked


def _inside(box, frame, tolerance=0.5):
    return box.x0 >= frame.x0 - tolerance and box.y0 >= frame.y0 - tolerance and \
        box.x1 <= frame.x1 + tolerance and box.y1 <= frame.y1 + tolerance
