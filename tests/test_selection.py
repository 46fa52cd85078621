"""Model selection (docs/algorithm.md §11.2): validation classes, selection by validation
score, early stopping, and a default path that stays the reference's.

The runs are the real script in subprocesses on a tiny dataset, with learning rates high
enough that the scores move within a few rounds.
"""
import collections
import os
import pathlib
import pickle
import subprocess

import pytest
import yaml

from conftest import TINY_FLAGS, dump_bytes, history_rows, make_dataset, run_exp_command, run_exp_here, tiny_config
from zscrgan.config import ConfigError
from zscrgan.data.dataset import DatasetError, load_dataset
from zscrgan.model.metrics import prec_from_records
from zscrgan.results.checkpoints import CheckpointSlot
from zscrgan.results.history import best_row
from zscrgan.results.run import Run
from zscrgan.data.selection import resolve_val_ids, training_split

FLAGS = [*TINY_FLAGS, "--gf_dim", "16", "--e_steps", "10", "--m_steps", "10", "--eval_ks", "5",
         "--generator_lr", "0.03", "--discriminator_lr", "0.03", "--CSEM_lr", "0.03", "--jit_compile", "false"]
EPOCHS = 14
VAL = ["--val_classes", "3", "--select", "val"]


# ----------------------------------------------------------------------------- helpers

def start(base, *args, fault=None):
    cmd, env = run_exp_command(base, *FLAGS, *args, fault=fault)
    return subprocess.run(cmd, cwd=str(base), env=env, capture_output=True, text=True, timeout=600)


def start_here(capsys, base, *args):
    """start's run in this process."""
    return run_exp_here(capsys, base, *FLAGS, *args)


def new_base(path, n_train=7):
    make_dataset(str(path / "datasets" / "TINY"), n_train=n_train)
    return path


def logs(base):
    return pathlib.Path(Run.find("TINY", logs_dir=str(base / "logs"), results_dir=str(base / "res")).logs)


def history(base):
    return history_rows(logs(base))


def dumps(base):
    return dump_bytes(Run.find("TINY", logs_dir=str(base / "logs"), results_dir=str(base / "res")).results)


def best_checkpoint_round(base):
    with open(logs(base) / "best" / "checkpoint") as f:
        name = f.readline().split('"')[1]
    return int(name.split("-")[1].split("_")[0])


def snapshot(base):
    out = {}
    for root, _, files in os.walk(base):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), base)] = f.read()
    return out


# ----------------------------------------------------------------------------- validation classes

@pytest.fixture
def tiny(tmp_path):
    folder = make_dataset(str(tmp_path / "TINY"), n_train=7)
    return load_dataset(folder), folder


def test_a_count_of_validation_classes_is_drawn_from_the_seed(tiny):
    dataset, folder = tiny
    ids = resolve_val_ids(tiny_config(val_classes=3, seed=4), dataset, folder)
    assert len(ids) == 3 and ids == sorted(ids) and set(ids) <= set(dataset.train_ids)
    assert ids == resolve_val_ids(tiny_config(val_classes=3, seed=4), dataset, folder)
    draws = {tuple(resolve_val_ids(tiny_config(val_classes=3, seed=s), dataset, folder)) for s in range(6)}
    assert len(draws) > 1
    assert resolve_val_ids(tiny_config(), dataset, folder) is None
    assert resolve_val_ids(tiny_config(val_classes=[5, 1]), dataset, folder) == [5, 1]


def test_validation_classes_from_valids_pkl(tiny):
    dataset, folder = tiny
    with pytest.raises(DatasetError, match="valids.pkl"):
        resolve_val_ids(tiny_config(val_classes="file"), dataset, folder)
    with open(os.path.join(folder, "valids.pkl"), "wb") as f:
        pickle.dump([2, 6], f, protocol=2)
    assert resolve_val_ids(tiny_config(val_classes="file"), dataset, folder) == [2, 6]
    with open(os.path.join(folder, "valids.pkl"), "wb") as f:
        pickle.dump([2, 8], f, protocol=2)  # 8 is an unseen class
    with pytest.raises(DatasetError, match="class 8 is not a seen class"):
        resolve_val_ids(tiny_config(val_classes="file"), dataset, folder)


@pytest.mark.parametrize("value,words", [(6, "too many"), ([1, 9], "class 9 is not a seen class"),
                                         ([0, 1, 2, 3, 4, 5], "at least 2 must stay")])
def test_validation_classes_that_do_not_fit_the_dataset(tiny, value, words):
    dataset, folder = tiny
    with pytest.raises(ConfigError, match=words):
        resolve_val_ids(tiny_config(val_classes=value), dataset, folder)


def test_the_sampler_never_draws_a_validation_class(tiny):
    """Both branches of the sampler: batches larger and smaller than the class count."""
    import tensorflow as tf
    from zscrgan.model.sampler import BatchSampler

    dataset, _ = tiny
    val = [1, 4]
    train = training_split(dataset, val)
    assert train.train_ids == [0, 2, 3, 5, 6] and dataset.train_ids == list(range(7))
    assert training_split(dataset, None) is dataset
    for batch in (12, 3):
        sampler = BatchSampler(train, batch, tf.random.Generator.from_seed(0))
        counts = collections.Counter(c for _ in range(200) for c in sampler.sample()[2].numpy().tolist())
        assert sorted(counts) == train.train_ids, batch


def test_the_validation_split_holds_only_validation_classes(tiny):
    from zscrgan.data.dataset import eval_split

    dataset, _ = tiny
    texts, q_labels, images, g_labels = eval_split(dataset, [1, 4])
    assert set(q_labels) == set(g_labels) == {1, 4}
    assert len(texts) == 2 * 2 and len(images) == 2 * 4


# ----------------------------------------------------------------------------- the default path

def checkpoints(base):
    """Every file of the run's best/ and latest/ checkpoint folders, by relative path."""
    return {k: v for k, v in snapshot(logs(base)).items() if k.startswith(("best", "latest"))}


@pytest.mark.slow
def test_options_at_their_off_values_change_nothing(tmp_path):
    """A run without the model-selection options and one with them at their off values write the
    same config.yml, history (minus timings), dumps and checkpoints: two runs made here, same threads."""
    plain, off = new_base(tmp_path / "plain", n_train=4), new_base(tmp_path / "off", n_train=4)
    assert start(plain, "--epochs", "4", "--threads", "1").returncode == 0
    proc = start(off, "--epochs", "4", "--threads", "1", "--select", "test", "--patience", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert history(plain) == history(off) and len(history(plain)) == 4
    assert list(history(plain)[0]) == ["round", "prec_at_5", "map_at_5", "d_loss", "g_loss", "kl_loss", "csem_loss"]
    assert dumps(plain) == dumps(off) and dumps(plain)
    assert checkpoints(plain) == checkpoints(off) and checkpoints(plain)
    config = [(b / "logs" / "TINY_logs" / "config.yml").read_text().replace(str(b), "BASE") for b in (plain, off)]
    assert config[0] == config[1]
    assert not {"val_classes", "select", "patience"} & set(yaml.safe_load(config[0]))


# ----------------------------------------------------------------------------- a real run selecting on validation classes

@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An uninterrupted run selecting on 3 validation classes, with a patience it may not reach."""
    base = new_base(tmp_path_factory.mktemp("full"))
    proc = start(base, "--epochs", str(EPOCHS), *VAL, "--patience", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, proc


@pytest.mark.slow
def test_select_val_dumps_the_test_retrieval_of_the_selected_round(full):
    base, proc = full
    rows = history(base)
    assert {"val_prec_at_5", "val_map_at_5"} <= set(rows[0])
    val_ids = yaml.safe_load((logs(base) / "config.yml").read_text())["val_classes"]
    assert len(val_ids) == 3 and set(val_ids) <= set(range(7))
    run = Run.at(str(logs(base)))
    selected = run.selected()
    assert selected["round"] == best_row(run.history()[1], "val_prec_at_5")["round"]
    assert best_checkpoint_round(base) == selected["round"]
    with open(run.selected_dump(), "rb") as f:
        records = pickle.load(f)
    assert run.selected_dump() == run.dump_path(selected)
    assert prec_from_records(records) == selected["prec_at_5"]
    assert {next(iter(r)) for r in records} == {7, 8, 9}  # test queries, not validation ones
    assert f"Done: {len(rows)} rounds, best val Prec@5 = {selected['val_prec_at_5']:.4f}" in proc.stdout


@pytest.mark.slow
def test_killed_and_resumed_ends_as_the_uninterrupted_run(full, tmp_path, capsys):
    """Killed part-way (a SIGKILL before round `kill`'s latest checkpoint) and resumed, a run with
    patience ends at the same round with the same history, best checkpoint round and dumps."""
    rows = history(full[0])
    kill = max(2, len(rows) - 1)
    base = new_base(tmp_path)
    args = ["--epochs", str(EPOCHS), *VAL, "--patience", "4"]
    killed = start(base, *args, fault=f"before_latest_checkpoint,{kill},KILL")
    assert killed.returncode == -9
    assert len(history(base)) == kill  # the row of the killed round, not yet checkpointed
    assert CheckpointSlot(str(logs(base) / "latest")).current().endswith(f"ckpt-{kill - 1}")
    proc = start_here(capsys, base, *args, "--resume")  # the resume and the refusal: in this process
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Resuming from round {kill - 1}" in proc.stdout
    assert history(base) == rows
    assert best_checkpoint_round(base) == best_checkpoint_round(full[0]) and dumps(base) == dumps(full[0])
    before = snapshot(base)
    refused = start_here(capsys, base, "--epochs", str(EPOCHS), "--select", "test", "--resume")
    assert refused.returncode == 2 and "another model selection (select val -> test)" in refused.stderr
    assert snapshot(base) == before


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("args,words", [
    (["--val_classes", "6"], "val_classes = 6 is too many"),
    (["--val_classes", "1,7"], "class 7 is not a seen class"),
    (["--val_classes", "1"], "must be >= 2"),
    (["--val_classes", "file"], "valids.pkl"),
    (["--select", "val"], "select = val needs validation classes"),
    (["--val_classes", "two"], "--val_classes: expected a number of classes"),
    (["--patience=-1"], "patience = -1 is out of range"),
])
def test_bad_model_selection_input_is_one_line_status_2_and_writes_nothing(tmp_path, args, words):
    base = new_base(tmp_path)
    (base / "logs" / "TINY_logs").mkdir(parents=True)
    (base / "logs" / "TINY_logs" / "history.csv").write_text("round,prec_at_5\n1,0.5\n")
    before = snapshot(base)
    proc = start(base, "--epochs", "1", *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert words in lines[0] and "Traceback" not in proc.stderr
    assert snapshot(base) == before
