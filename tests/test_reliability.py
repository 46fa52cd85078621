"""Resume after a kill, reproducible runs, guarded training, --eval_only, the run lock.

Runs the real script on a tiny dataset: in subprocesses where the process is the question
(kills, signals, the same run in two processes, the lock), else in this process (`run_here`).
Kills land at chosen moments through the ZSCRGAN_FAULT hook (zscrgan/files.py): the process
sends itself a real SIGKILL or SIGINT there. One test also kills a run from outside at
whatever moment it is in.
"""
import csv
import glob
import os
import pathlib
import pickle
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT, TINY_FLAGS, dump_bytes, history_rows, make_dataset, run_exp_command, run_exp_here
from zscrgan.model.metrics import prec_from_records
from zscrgan.files import LockHeld, RunLock
from zscrgan.results.run import run_dirs

EPOCHS = 6
FLAGS = [*TINY_FLAGS, "--eval_ks", "5"]


def start(base, *args, fault=None):
    """run_exp.py in a process whose SIGINT is Python's KeyboardInterrupt, as in a terminal, even
    when the tests run as a background job (which starts its processes with SIGINT ignored)."""
    cmd, env = run_exp_command(base, *FLAGS, *args, fault=fault)
    return subprocess.Popen(cmd, cwd=str(base), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run(base, *args, fault=None):
    proc = start(base, *args, fault=fault)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def run_here(capsys, base, *args):
    """run's command line in this process: (status, stdout, stderr)."""
    proc = run_exp_here(capsys, base, *FLAGS, *args)
    return proc.returncode, proc.stdout, proc.stderr


def new_base(path):
    make_dataset(str(path / "datasets" / "TINY"))
    return path


def logs(base):
    return pathlib.Path(run_dirs("TINY", None, str(base / "logs"), str(base / "res"))[0])


def history(base):
    return history_rows(logs(base))


def dumps(base):
    """{file name: bytes} of the training dumps."""
    return dump_bytes(run_dirs("TINY", None, str(base / "logs"), str(base / "res"))[1])


def results(base):
    """Everything a deterministic run must reproduce: history without timings, and dumps."""
    return history(base), dumps(base)


def checkpoint_values(prefix):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name).tolist() for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def latest_prefix(base, slot="latest"):
    import tensorflow as tf
    return tf.train.latest_checkpoint(str(logs(base) / slot))


def assert_files_complete(base):
    """Every file left in the output folders loads; only *.partial and .staging are temporary."""
    import tensorflow as tf
    for folder in (base / "res", base / "logs"):
        for root, dirs, files in os.walk(folder):
            if ".staging" in pathlib.Path(root).parts:  # a save in progress, with TensorFlow's own temp folders
                continue
            for name in files:
                path = os.path.join(root, name)
                if name.endswith(".partial") or name.startswith("events.out") or name == "run.lock":
                    continue
                if name.endswith(".pkl"):
                    with open(path, "rb") as f:
                        records = pickle.load(f)
                    assert prec_from_records(records) == float(name[3:-4]), path
                elif name.endswith(".yml"):
                    assert isinstance(yaml.safe_load(open(path)), dict), path
                elif name == "history.csv":
                    rounds = [int(r["round"]) for r in csv.DictReader(open(path, newline=""))]
                    assert rounds == list(range(1, len(rounds) + 1)), path
                elif name == "checkpoint":
                    assert tf.train.latest_checkpoint(root), path
                elif name.endswith(".index"):
                    checkpoint_values(path[:-len(".index")])
                elif ".data-" in name:
                    continue  # read through its .index
                else:
                    raise AssertionError(f"unexpected file {path}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of EPOCHS rounds."""
    base = new_base(tmp_path_factory.mktemp("reference"))
    rc, out, err = run(base, "--epochs", str(EPOCHS))
    assert rc == 0, err[-3000:]
    return base


def copy_run(reference, path):
    shutil.copytree(reference, path, dirs_exist_ok=True)
    return path


@pytest.mark.slow
def test_same_seed_gives_the_same_run(reference, tmp_path):
    base = new_base(tmp_path)
    rc, _, err = run(base, "--epochs", str(EPOCHS))
    assert rc == 0, err[-3000:]
    assert results(base) == results(reference)
    assert len(history(base)) == EPOCHS and dumps(base)
    assert checkpoint_values(latest_prefix(base)) == checkpoint_values(latest_prefix(reference))


# Each step resumes the previous one's remains; the last finishes the run.
KILL_CHAIN = [
    ("write:dump,1,KILL", -9),                 # round 1's dump half-written, no checkpoint yet
    ("write:history,1,KILL", -9),              # round 1 redone; its history row half-written
    ("checkpoint:best,1,KILL", -9),            # best checkpoint staged, not in place
    ("before_latest_checkpoint,1,KILL", -9),   # best checkpoint and history of round 1 written, latest not
    ("after_e_step,2,INT", 130),               # Ctrl-C in round 2: round 2 finishes and is checkpointed
    ("write:config,1,KILL", -9),               # the resumed run's config.yml half-written
    ("write:checkpoint_state:latest,1,KILL", -9),  # round 3's checkpoint in place, not yet pointed at
    ("after_e_step,2,KILL", -9),               # mid-round 4
    (None, 0),
]


@pytest.mark.slow
def test_killed_at_any_moment_and_resumed_matches_the_uninterrupted_run(reference, tmp_path):
    base = new_base(tmp_path)
    for i, (fault, status) in enumerate(KILL_CHAIN):
        resume = ["--resume"] if i else []
        rc, out, err = run(base, "--epochs", str(EPOCHS), *resume, fault=fault)
        assert rc == status, f"{fault}: {err[-3000:]}"
        assert_files_complete(base)
        ckpt = latest_prefix(base)
        done = int(os.path.basename(ckpt).split("-")[1].split("_")[0]) if ckpt else 0
        rows = history(base) if (logs(base) / "history.csv").exists() else []
        assert len(rows) in (done, done + 1)  # a row written after the last checkpoint is redone
        if status == 130:
            assert done == 2 and len(history(base)) == 2 and "stopped after round 2" in err
            assert f" 2/{EPOCHS} [" in err.split("\r")[-1]  # the bar's last state: the round it stopped after
    assert results(base) == results(reference)
    assert checkpoint_values(latest_prefix(base)) == checkpoint_values(latest_prefix(reference))
    left = glob.glob(str(base / "**" / "*.partial"), recursive=True)
    left += glob.glob(str(base / "**" / ".staging"), recursive=True)
    assert not left


@pytest.mark.slow
def test_killed_from_outside_and_resumed_matches(reference, tmp_path):
    base = new_base(tmp_path)
    epochs = 40
    proc = start(base, "--epochs", str(epochs))
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        path = logs(base) / "history.csv"
        if path.exists() and path.read_text().count("\n") >= 3:
            break
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -9 and len(history(base)) < epochs  # killed part-way, not finished
    assert_files_complete(base)
    rc, _, err = run(base, "--epochs", str(epochs), "--resume")
    assert rc == 0, err[-3000:]
    rows, files = results(base)
    ref_rows, ref_files = results(reference)
    assert len(rows) == epochs and rows[:EPOCHS] == ref_rows
    assert all(files.get(name) == data for name, data in ref_files.items())


@pytest.mark.slow
def test_nonfinite_loss_stops_with_status_3_and_keeps_the_last_good_state(reference, tmp_path, capsys):
    base = copy_run(reference, tmp_path)
    before = dumps(base), latest_prefix(base)
    rc, out, err = run_here(capsys, base, "--resume", "--epochs", str(EPOCHS + 1), "--generator_lr", "1e30")
    assert rc == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: round {EPOCHS + 1}: training diverged in the E-step")
    assert "generator loss g_loss = nan" in last and "mean losses of the step: d_loss = " in last
    assert f"latest checkpoint (round {EPOCHS})" in last and "Traceback" not in err
    assert (dumps(base), latest_prefix(base)) == before and len(history(base)) == EPOCHS
    assert_files_complete(base)


@pytest.mark.slow
def test_nonfinite_csem_weights_stop_the_first_round(tmp_path, capsys):
    base = new_base(tmp_path)
    rc, out, err = run_here(capsys, base, "--epochs", "2", "--CSEM_lr", "3e38")
    assert rc == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: round 1: training diverged in the M-step: CSEM ")
    assert "CSEM weights are not finite" in last
    assert "no checkpoint was written yet" in last and not latest_prefix(base) and not dumps(base)


@pytest.mark.slow
def test_resume_refuses_a_new_model_shape_and_fresh_runs_refuse_old_checkpoints(reference, tmp_path, capsys):
    base = copy_run(reference, tmp_path)
    rc, _, err = run_here(capsys, base, "--resume", "--gf_dim", "16")
    assert rc == 2 and err.strip().splitlines()[-1].startswith("error: cannot resume")
    assert "gf_dim 8 -> 16" in err
    rc, _, err = run_here(capsys, base, "--epochs", "1")
    assert rc == 2 and "--resume" in err.strip().splitlines()[-1]
    make_dataset(str(base / "datasets" / "TINY"), text_dim=7)
    rc, _, err = run_here(capsys, base, "--resume")
    assert rc == 2 and "text_dim 6 -> 7" in err
    assert results(base) == results(reference)


@pytest.mark.slow
def test_resume_takes_the_runs_config_and_may_change_epochs(reference, tmp_path, capsys):
    from zscrgan import cli
    base = copy_run(reference, tmp_path)
    config = logs(base) / "config.yml"
    config.write_text(config.read_text().replace(str(reference), str(base)))
    rc = cli.main(["--dataset", "TINY", "--resume", "--logs_dir", str(base / "logs"), "--epochs", str(EPOCHS + 1)],
                  prog="run_exp.py", only="train")
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    assert "Resuming with changed settings: epochs" in out and "gf_dim: 8" in out
    assert len(history(base)) == EPOCHS + 1
    assert yaml.safe_load(config.read_text())["epochs"] == EPOCHS + 1


@pytest.mark.slow
def test_eval_only_evaluates_the_best_checkpoint_without_training(reference, tmp_path, capsys):
    base = copy_run(reference, tmp_path)
    before = results(base), latest_prefix(base)
    rc, out, err = run_here(capsys, base, "--eval_only")
    assert rc == 0, err[-3000:]
    assert f"Evaluating {logs(base) / 'best'}" in out
    (path,) = glob.glob(str(base / "res" / "TINY_res" / "eval" / "acc*.pkl"))
    records = pickle.load(open(path, "rb"))
    assert len(records) == 3 * 2 and prec_from_records(records) == float(os.path.basename(path)[3:-4])
    assert (results(base), latest_prefix(base)) == before
    rc, _, err = run_here(capsys, base, "--eval_only", "--checkpoint", str(base / "nowhere"))
    assert rc == 2 and err.strip().splitlines()[-1].startswith("error: --checkpoint")


@pytest.mark.slow
def test_eval_only_without_a_checkpoint_uses_fresh_weights_and_warns_of_a_small_gallery(tmp_path, capsys):
    make_dataset(str(tmp_path / "datasets" / "TINY"), n_img=1)  # 3 gallery images < K = 5
    rc, out, err = run_here(capsys, tmp_path, "--eval_only")
    assert rc == 0, err[-3000:]
    assert "fewer than K = 5" in err and "freshly initialised weights" in err
    assert glob.glob(str(tmp_path / "res" / "TINY_res" / "eval" / "acc*.pkl"))
    assert not os.path.exists(logs(tmp_path) / "latest")


def hold_lock(folder):
    """A process holding `folder`'s run lock (stop it with .kill()), once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from zscrgan.files import RunLock\n"
        "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)"),
        str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    base = new_base(tmp_path)
    folder = logs(base)
    folder.mkdir(parents=True)
    holder = hold_lock(folder)
    try:
        rc, _, err = run(base, "--epochs", "1")
        assert rc == 2 and "Traceback" not in err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: another run is using {folder}") and f"pid {holder.pid}" in last
        with pytest.raises(LockHeld):
            RunLock(str(folder)).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up, the lock file stays behind
        holder.wait()
    assert (folder / "run.lock").exists()
    lock = RunLock(str(folder)).acquire()
    lock.release()
    assert not (folder / "run.lock").exists()


def test_two_runs_with_other_logs_folders_cannot_share_a_results_folder(tmp_path):
    """A run holds its results folder as it holds its logs folder, so dumps never mix."""
    base = new_base(tmp_path)
    folder = base / "res" / "TINY_res"
    folder.mkdir(parents=True)
    holder = hold_lock(folder)
    try:
        rc, _, err = run(base, "--epochs", "1", "--logs_dir", str(base / "other_logs"))
        last = err.strip().splitlines()[-1]
        assert rc == 2 and last.startswith(f"error: another run is using {folder}")
        assert not list(folder.glob("acc*.pkl")) and not (base / "other_logs" / "TINY_logs" / "history.csv").exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_new_run_into_a_results_folder_holding_another_runs_dumps_is_refused(tmp_path, capsys):
    """One unnamed run after another, other logs folders, the same results folder: the second is
    refused before it writes anything; the first goes on with --resume."""
    base = new_base(tmp_path)
    first = ["--logs_dir", str(base / "A")]
    assert run_here(capsys, base, "--epochs", "1", *first)[0] == 0
    res = base / "res" / "TINY_res"
    before = {p.name: p.read_bytes() for p in res.iterdir()}
    rc, _, err = run_here(capsys, base, "--epochs", "1", "--seed", "1", "--logs_dir", str(base / "B"))
    lines = err.strip().splitlines()
    assert rc == 2 and lines[-1].startswith(f"error: {res} holds the dumps of another run (acc")
    assert "--run_name" in lines[-1] and f"delete {base / 'B' / 'TINY_logs'} and {res}" in lines[-1]
    assert {p.name: p.read_bytes() for p in res.iterdir()} == before
    assert not (base / "B" / "TINY_logs" / "history.csv").exists()
    rc, _, err = run_here(capsys, base, "--epochs", "1", "--resume", "--logs_dir", str(base / "B"))  # nothing of B's to resume
    assert rc == 2 and err.strip().splitlines()[-1].startswith(f"error: {res} holds the dumps of another run")
    assert {p.name: p.read_bytes() for p in res.iterdir()} == before
    rc, out, err = run_here(capsys, base, "--epochs", "2", "--resume", *first)
    assert rc == 0 and "Resuming from round 1" in out, err


@pytest.mark.slow
def test_ctrl_c_before_the_first_round_says_that_nothing_was_checkpointed(tmp_path):
    base = new_base(tmp_path)
    rc, _, err = run(base, "--epochs", "2", fault="write:config,1,INT")
    assert rc == 130 and err.strip().splitlines()[-1] == "interrupted before round 1 began; no checkpoint was written"
    assert not (logs(base) / "latest").exists()


def test_usage_errors(tmp_path):
    base = new_base(tmp_path)
    for args, words in ((["--checkpoint", "x"], "--checkpoint needs --eval_only"),
                        (["--resume", "--eval_only"], "do not go together"),
                        (["--nope", "1"], "unrecognized argument --nope")):
        rc, _, err = run(base, *args)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


def test_checkpoint_restores_every_part_of_the_training_state(tmp_path):
    """Weights, optimizer slots, sampler cursors and order, the random generator, round and best."""
    import numpy as np
    import tensorflow as tf
    from conftest import tiny_config
    from zscrgan.results.checkpoints import CheckpointSlot, restore
    from zscrgan.data.dataset import load_dataset
    from zscrgan.run.loop import build

    # 5 seen classes > batch 3: the sampler walks a class order with a cursor, reshuffled after
    # the first pass (which follows trainids.pkl, as the fresh `other` below still does).
    dataset = load_dataset(make_dataset(str(tmp_path / "D"), n_train=5, n_img=6))
    cfg = tiny_config(batch_size=3)
    model, evaluator, _, ckpt = build(cfg, dataset)
    model.e_step(tf.constant(3), tf.constant(2))
    model.m_step(tf.constant(2))
    evaluator.evaluate()
    ckpt.round.assign(4)
    ckpt.best.assign(0.25)
    prefix = CheckpointSlot(str(tmp_path / "latest")).save(ckpt, 4)
    assert int(model.sampler.cursor) > 0 and int(tf.reduce_sum(model.sampler.image_cursor)) > 0
    assert model.sampler.order.numpy().tolist() != list(range(5))  # reshuffled, so its restore is tested

    other, other_eval, _, other_ckpt = build(tiny_config(batch_size=3, seed=1), dataset)
    restore(other_ckpt, prefix)
    assert int(other_ckpt.round) == 4 and float(other_ckpt.best) == 0.25
    parts = {"rng": (model.rng.state, other.rng.state),
             "cursor": (model.sampler.cursor, other.sampler.cursor),
             "order": (model.sampler.order, other.sampler.order),
             "image_cursor": (model.sampler.image_cursor, other.sampler.image_cursor),
             "critic_ms": (model.opt_d.ms[0], other.opt_d.ms[0]),
             "adam_m": (model.opt_f.m[0], other.opt_f.m[0]),
             "beta1_power": (model.opt_f.beta1_power, other.opt_f.beta1_power)}
    for name, (a, b) in parts.items():
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert len(model.variables) == len(other.variables)
    for a, b in zip(model.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    # Both continue the same way: same batches, noise and updates.
    outs = [m.e_step(tf.constant(2), tf.constant(2)) for m in (model, other)]
    assert float(outs[0]["g_loss"]) == float(outs[1]["g_loss"])
    assert evaluator.evaluate()[1] == other_eval.evaluate()[1]


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    import tensorflow as tf
    from zscrgan.results.checkpoints import CheckpointMismatch, CheckpointSlot, restore

    prefix = CheckpointSlot(str(tmp_path)).save(tf.train.Checkpoint(w=tf.Variable(tf.ones([3]))), 1)
    with pytest.raises(CheckpointMismatch, match="does not fit"):
        restore(tf.train.Checkpoint(w=tf.Variable(tf.ones([4]))), prefix)


def test_saving_a_round_again_never_touches_the_checkpoint_in_use(tmp_path):
    import tensorflow as tf
    from zscrgan.results.checkpoints import CheckpointSlot

    slot, w = CheckpointSlot(str(tmp_path)), tf.Variable(1.0)
    ckpt = tf.train.Checkpoint(w=w)
    first = slot.save(ckpt, 3)
    w.assign(2.0)
    second = slot.save(ckpt, 3)  # a resumed run redoing round 3
    assert os.path.basename(first) == "ckpt-3" and os.path.basename(second) == "ckpt-3_1"
    assert slot.current() == second == tf.train.latest_checkpoint(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-3_1.data-00000-of-00001", "ckpt-3_1.index"]
    slot.save(ckpt, 4)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]


def test_history_drops_rows_past_the_checkpoint_and_grows_columns(tmp_path):
    from zscrgan.results.history import History, read_history

    path = str(tmp_path / "history.csv")
    h = History(path, 0)
    for r in (1, 2, 3):
        h.append({"round": r, "prec_at_5": r / 10})
    assert [row["round"] for row in read_history(path)[1]] == [1, 2, 3]
    h = History(path, 2)  # the checkpoint says round 2: round 3's row was written after it
    assert [row["round"] for row in read_history(path)[1]] == [1, 2]
    h.append({"round": 3, "prec_at_5": 0.5, "prec_at_10": 0.25})
    columns, rows = read_history(path)
    assert columns == ["round", "prec_at_5", "prec_at_10"]
    assert rows[0]["prec_at_10"] is None and rows[2] == {"round": 3, "prec_at_5": 0.5, "prec_at_10": 0.25}
    assert open(path).read().splitlines()[1:] == ["1,0.1,", "2,0.2,", "3,0.5,0.25"]
    History(path, 0)
    assert not os.path.exists(path)
