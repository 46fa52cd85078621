"""Model selection (docs/algorithm.md §11.2): validation classes, selection by validation
score, early stopping, and a default path that stays the reference's.

The runs are the real script in subprocesses on a tiny dataset, with learning rates high
enough that the scores move within a few rounds.
"""
import collections
import csv
import glob
import hashlib
import os
import pickle
import subprocess

import pytest
import yaml

from conftest import TINY_FLAGS, make_dataset, run_exp_command, tiny_config
from zscrgan.config import ConfigError
from zscrgan.data import DatasetError, load_dataset
from zscrgan.evaluation import prec_from_records
from zscrgan.selection import best_row, resolve_val_ids, training_split

FLAGS = [*TINY_FLAGS, "--gf_dim", "16", "--e_steps", "10", "--m_steps", "10", "--eval_ks", "5",
         "--generator_lr", "0.03", "--discriminator_lr", "0.03", "--CSEM_lr", "0.03", "--jit_compile", "false"]
TIMING = {"e_step_s", "m_step_s", "eval_s"}
EPOCHS = 14
VAL = ["--val_classes", "3", "--select", "val"]


# ----------------------------------------------------------------------------- helpers

def start(base, *args, fault=None):
    cmd, env = run_exp_command(base, *FLAGS, *args, fault=fault)
    return subprocess.run(cmd, cwd=str(base), env=env, capture_output=True, text=True, timeout=600)


def new_base(path, n_train=7):
    make_dataset(str(path / "datasets" / "TINY"), n_train=n_train)
    return path


def logs(base):
    return base / "logs" / "TINY_logs"


def history(base):
    with open(logs(base) / "history.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def dumps(base):
    return {os.path.basename(p): open(p, "rb").read() for p in glob.glob(str(base / "res" / "TINY_res" / "acc*.pkl"))}


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


def improved(rows, key):
    """The rows that set a new best of `key`: where a run writes a dump."""
    out, best = [], -1.0
    for row in rows:
        if float(row[key]) > best:
            out.append(row)
            best = float(row[key])
    return out


def expected_stop(rows, key, patience):
    """The round a run with `patience` stops at, replayed from an uninterrupted run's history."""
    best, best_round = -1.0, 0
    for row in rows:
        r, score = int(row["round"]), float(row[key])
        if score > best:
            best, best_round = score, r
        if r - best_round >= patience:
            return r, best_round
    return None, best_round


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
    from zscrgan.sampler import BatchSampler

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
    from zscrgan.evaluation import eval_split

    dataset, _ = tiny
    texts, q_labels, images, g_labels = eval_split(dataset, [1, 4])
    assert set(q_labels) == set(g_labels) == {1, 4}
    assert len(texts) == 2 * 2 and len(images) == 2 * 4


def test_best_row_is_the_earliest_of_ties_and_skips_blanks():
    rows = [{"round": "1", "v": ""}, {"round": "2", "v": "0.5"}, {"round": "3", "v": "0.7"},
            {"round": "4", "v": "0.7"}, {"round": "5"}]
    assert best_row(rows, "v")["round"] == "3"
    assert best_row(rows[:1], "v") is None


# ----------------------------------------------------------------------------- the default path

# history.csv and dumps of the parent commit of model selection for this run (4 seen
# classes, seed 0, 6 rounds): (prec_at_5, map_at_5, d_loss, g_loss, kl_loss, csem_loss).
PARENT_ROWS = [
    (0.3333333333333333, 0.30972222222222223, -0.00017657491844147444, 4.666256904602051, 0.001283440156839788, 0.6872662305831909),
    (0.3333333333333333, 0.2743055555555556, -0.0003330364706926048, 4.689416408538818, 0.0009269167785532773, 0.6881375312805176),
    (0.3333333333333333, 0.29236111111111107, -0.0006331651238724589, 4.682219505310059, 0.0003740862593986094, 0.6765301823616028),
    (0.3333333333333333, 0.2791666666666666, -0.0008528678445145488, 4.677937030792236, 0.00019861164037138224, 0.6655620336532593),
    (0.4333333333333333, 0.4375, -0.0009149074321612716, 4.641777038574219, 0.0006582802161574364, 0.6230179071426392),
    (0.3, 0.21944444444444444, -0.0008688739617355168, 4.614756107330322, 0.004309852607548237, 0.5109685063362122),
]
PARENT_DUMPS = {"acc0.3333333333333333.pkl": "ffaaeec1dd1b5de9d33fd86d10a088acbe64d9f6e14af7ac82d89dadf66d85c4",
                "acc0.4333333333333333.pkl": "22a3668e43541316a444edd6ac79ee21b81f2d3b72b975bd048f920b986bb7d1"}


@pytest.mark.slow
def test_without_model_selection_a_run_is_the_parent_commits(tmp_path):
    base = new_base(tmp_path, n_train=4)
    proc = start(base, "--epochs", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = history(base)
    assert list(rows[0]) == ["round", "prec_at_5", "map_at_5", "d_loss", "g_loss", "kl_loss", "csem_loss"]
    for row, parent in zip(rows, PARENT_ROWS, strict=True):
        assert (float(row["prec_at_5"]), float(row["map_at_5"])) == parent[:2]
        losses = [float(row[k]) for k in ("d_loss", "g_loss", "kl_loss", "csem_loss")]
        assert losses == pytest.approx(parent[2:], rel=1e-4, abs=1e-6)
    assert {name: hashlib.sha256(data).hexdigest() for name, data in dumps(base).items()} == PARENT_DUMPS
    assert not {"val_classes", "select", "patience"} & set(yaml.safe_load((logs(base) / "config.yml").read_text()))


# ----------------------------------------------------------------------------- selection and early stopping

@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """An uninterrupted run selecting on 3 validation classes, without patience."""
    base = new_base(tmp_path_factory.mktemp("full"))
    proc = start(base, "--epochs", str(EPOCHS), *VAL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, proc


@pytest.mark.slow
def test_select_val_dumps_the_test_retrieval_of_the_best_validation_round(full):
    base, proc = full
    rows = history(base)
    assert len(rows) == EPOCHS and {"val_prec_at_5", "val_map_at_5"} <= set(rows[0])
    val_ids = yaml.safe_load((logs(base) / "config.yml").read_text())["val_classes"]
    assert len(val_ids) == 3 and set(val_ids) <= set(range(7))
    selected = best_row(rows, "val_prec_at_5")
    best_test = best_row(rows, "prec_at_5")
    assert selected["round"] != best_test["round"]  # the case this is about
    assert best_checkpoint_round(base) == int(selected["round"])
    path = base / "res" / "TINY_res" / f"acc{float(selected['prec_at_5'])}.pkl"
    with open(path, "rb") as f:
        records = pickle.load(f)
    assert prec_from_records(records) == float(selected["prec_at_5"])
    assert {next(iter(r)) for r in records} == {7, 8, 9}  # test queries, not validation ones
    assert f"acc{float(best_test['prec_at_5'])}.pkl" not in dumps(base)
    assert "New best val Prec@5" in proc.stdout + proc.stderr
    assert f"Done: {EPOCHS} rounds, best val Prec@5 = {float(selected['val_prec_at_5'])}" in proc.stdout


def dumps_until(base, stop):
    """The dumps of `base`'s run written in rounds up to `stop` (at each new best)."""
    names = {f"acc{float(r['prec_at_5'])}.pkl" for r in improved(history(base)[:stop], "val_prec_at_5")}
    return {name: data for name, data in dumps(base).items() if name in names}


@pytest.mark.slow
def test_patience_stops_exactly_patience_rounds_after_the_last_best(full, tmp_path):
    base, patience = new_base(tmp_path), 3
    stop, best = expected_stop(history(full[0]), "val_prec_at_5", patience)
    assert stop is not None and stop == best + patience < EPOCHS
    proc = start(base, "--epochs", str(EPOCHS), *VAL, "--patience", str(patience))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert history(base) == history(full[0])[:stop]  # patience does not change the rounds it runs
    assert (f"Stopped early after round {stop}: no new best val Prec@5 in the {patience} rounds "
            f"since round {best}") in proc.stdout
    assert best_checkpoint_round(base) == best and dumps(base) == dumps_until(full[0], stop)


@pytest.mark.slow
def test_killed_and_resumed_stops_at_the_same_round_with_the_same_dump(full, tmp_path):
    stop, best = expected_stop(history(full[0]), "val_prec_at_5", 4)
    assert best > 1  # a best round after the first, so the count starts from a real best
    base = new_base(tmp_path)
    args = ["--epochs", str(EPOCHS), *VAL, "--patience", "4"]
    killed = start(base, *args, fault=f"before_latest_checkpoint,{stop - 1},KILL")
    assert killed.returncode == -9
    proc = start(base, *args, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Stopped early after round {stop}" in proc.stdout
    assert history(base) == history(full[0])[:stop]
    assert best_checkpoint_round(base) == best and dumps(base) == dumps_until(full[0], stop)
    again = start(base, *args, "--resume")
    assert again.returncode == 0 and "Nothing to do: the run stopped early" in again.stdout
    before = snapshot(base)
    refused = start(base, "--epochs", str(EPOCHS), "--select", "test", "--resume")
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
