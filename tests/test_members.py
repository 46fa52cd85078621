"""Seeds together (`--seeds`, zscrgan/run/members.py, docs/algorithm.md §11.5): each member of a
group is an ordinary run, byte for byte the run of its seed alone; selection, patience and
divergence are each member's own; a killed group resumes to the uninterrupted group."""
import csv
import os
import subprocess

import numpy as np
import pytest

from conftest import TINY_FLAGS, dump_bytes, history_rows, make_dataset, run_exp_command, run_tool, tiny_config
from zscrgan.files import read_yaml, restart_fault_counts
from zscrgan.results.run import CONFIG_FILE, Run
from zscrgan.run import loop, members

SEEDS = [0, 1, 2]
EPOCHS = 3
PLAIN = ["--jit_compile", "false"]  # the plain graph: for the tests whose question is not XLA's kernels


def folders(base, logs="logs"):
    return {"datasets_dir": str(base / "datasets"), "logs_dir": str(base / logs), "results_dir": str(base / "res")}


def flags(base, *args):
    return ["--dataset", "TINY", "--datasets_dir", base / "datasets", "--logs_dir", base / "logs",
            "--results_dir", base / "res", *TINY_FLAGS, *args]


def outputs(run):
    """A run's history without timings, its dumps' bytes, and every tensor of its checkpoints."""
    import tensorflow as tf
    tensors = {}
    for which in ("latest", "best"):
        reader = tf.train.load_checkpoint(run.checkpoint(which))
        tensors.update({(which, name): reader.get_tensor(name) for name in reader.get_variable_to_shape_map()})
    return history_rows(run.logs), dump_bytes(run.results), tensors


def assert_same(a, b, what):
    assert a[0] == b[0] and a[0], what
    assert a[1] == b[1] and a[1], what
    assert sorted(a[2]) == sorted(b[2]), what
    for name, value in a[2].items():
        np.testing.assert_array_equal(value, b[2][name], err_msg=f"{what}: {name}")


def member_runs(base, logs="logs", seeds=SEEDS, **cfg):
    return [Run.of(tiny_config(seed=s, run_name=f"seed{s}", **folders(base, logs), **cfg)) for s in seeds]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """A group of SEEDS trained for EPOCHS rounds with XLA, as `--seeds 0,1,2` trains it."""
    base = tmp_path_factory.mktemp("group")
    make_dataset(str(base / "datasets" / "TINY"))
    assert run_tool("train", flags(base, "--seeds", ",".join(map(str, SEEDS)), "--epochs", EPOCHS)) == 0
    return base


@pytest.fixture(scope="module")
def plain_pair(tmp_path_factory):
    """A group of seeds 0 and 1 trained for EPOCHS rounds in the plain graph (jit_compile false):
    the uninterrupted group for the tests whose question is the group's files and stops, not XLA's
    kernels (`group` covers those)."""
    base = tmp_path_factory.mktemp("plain_pair")
    make_dataset(str(base / "datasets" / "TINY"))
    assert run_tool("train", flags(base, *PLAIN, "--seeds", "0,1", "--epochs", EPOCHS)) == 0
    return base


@pytest.mark.slow
def test_each_member_is_the_run_of_its_seed_alone(group, tmp_path):
    for seed, run in zip(SEEDS, member_runs(group)):
        cfg = tiny_config(seed=seed, run_name=f"seed{seed}", epochs=EPOCHS, jit_compile=True,
                          **{**folders(group, "solo"), "results_dir": str(tmp_path / "res")})
        loop.run(cfg, progress=False, reuse_kernels=True)  # one compile for the three seeds (test_kept_kernels)
        solo = Run.of(cfg)
        assert_same(outputs(run), outputs(solo), f"seed {seed}")
        paths = ("logs_dir", "results_dir")
        saved = [{k: v for k, v in read_yaml(r.path(CONFIG_FILE)).items() if k not in paths} for r in (run, solo)]
        assert saved[0] == saved[1] and saved[0]["seed"] == seed and "seeds" not in saved[0]


@pytest.mark.slow
def test_a_member_is_read_evaluated_and_exported_like_any_run(group, tmp_path, capsys):
    assert run_tool("train", flags(group, "--seeds", "0,1,2", "--eval_only")) == 0
    for run in member_runs(group):
        assert dump_bytes(run.results_path("eval"))
    assert run_tool("inspect", ["--dataset", "TINY", "--run_name", "seed1", "--logs_dir", group / "logs",
                                "--results_dir", group / "res", "--datasets_dir", group / "datasets"]) == 0
    assert "seed1" in capsys.readouterr().out
    assert run_tool("export", ["--dataset", "TINY", "--run_name", "seed2", "--logs_dir", group / "logs",
                               "--results_dir", group / "res", "--datasets_dir", group / "datasets",
                               "--out", tmp_path / "model"]) == 0
    assert (tmp_path / "model" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_report_summarises_the_members_as_a_sweeps_seeds(group, tmp_path, capsys):
    folders = [run.logs for run in member_runs(group)]
    assert run_tool("report", folders) == 0
    table = capsys.readouterr().out
    assert "| TINY    | 3        | 0       | 0      |" in table and "give --out DIR" in table
    assert run_tool("report", [*folders, "--out", tmp_path / "rep", "--no_baselines"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "rep" / "results.csv")))
    assert [(r["seed"], r["trial"], r["status"]) for r in rows] == [(str(s), f"seed{s}", "finished") for s in SEEDS]
    assert (tmp_path / "rep" / "plots" / "TINY.png").is_file()
    assert run_tool("report", [folders[0], group / "res"]) == 2
    assert "is not a run's logs folder" in capsys.readouterr().err


# Each step resumes the previous one's remains; the last finishes the group.
KILL_CHAIN = [
    ("write:checkpoint_state:latest,2,KILL", -9),  # round 1: seed0 points at it, seed1 has only staged it
    ("after_e_step,1,INT", 130),                   # Ctrl-C in round 2: the group finishes it and stops
    (None, 0),
]


@pytest.mark.slow
def test_a_killed_group_resumes_to_the_uninterrupted_group(plain_pair, tmp_path, monkeypatch, capsys):
    """The kill needs a process of its own; the Ctrl-C (the loop's own handler) and the last
    resume run here."""
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    for i, (fault, status) in enumerate(KILL_CHAIN):
        args = [*TINY_FLAGS, *PLAIN, "--seeds", "0,1", "--epochs", str(EPOCHS), *["--resume"] * bool(i)]
        if status == -9:
            cmd, env = run_exp_command(tmp_path, *args, fault=fault)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path), env=env)
            rc, err = proc.returncode, proc.stderr
        else:
            monkeypatch.delenv("ZSCRGAN_FAULT", raising=False)
            if fault:
                monkeypatch.setenv("ZSCRGAN_FAULT", fault)
            restart_fault_counts()
            rc = run_tool("train", flags(tmp_path, *args[len(TINY_FLAGS):]))  # flags() adds TINY_FLAGS
            err = capsys.readouterr().err
        assert rc == status, f"{fault}: {err[-3000:]}"
        if status == 130:
            assert "stopped after round 2" in err
    for seed, run, want in zip(SEEDS, member_runs(tmp_path, seeds=[0, 1]), member_runs(plain_pair, seeds=[0, 1])):
        assert_same(outputs(run), outputs(want), f"seed {seed}")
        assert not [f for f in os.listdir(run.path("latest")) if f.endswith(".index")][1:]  # one checkpoint kept


def scores(by_seed):
    """A stand-in for loop.run_round: member of seed s scores by_seed[s][round - 1]."""
    def run_round(model, active, steps, startup=None):
        out = {}
        for m in active:
            p = by_seed[m.cfg.seed][m.next_round() - 1]
            out[m] = ({"prec_at_5": p, "map_at_5": p / 2}, {"d_loss": 0.0, "g_loss": 1.0, "kl_loss": 0.0,
                      "csem_loss": 0.5}, {"e_step_s": 0.0, "m_step_s": 0.0, "eval_s": 0.0}, [{0: [0, 0]}])
        return out
    return run_round


def test_patience_stops_each_member_on_its_own(tmp_path, monkeypatch, capsys):
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    monkeypatch.setattr(loop, "probe", lambda model, steps: None)  # the steps never run here
    monkeypatch.setattr(loop, "run_round", scores({0: [0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
                                                   1: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}))
    cfg = tiny_config(seeds=[0, 1], epochs=6, patience=2, **folders(tmp_path))
    summaries = loop.run(cfg, progress=False)
    assert [(s["rounds"], s["stopped_early"], s["best"]) for s in summaries] == [(3, True, 0.5), (6, False, 0.6)]
    first, second = member_runs(tmp_path, seeds=[0, 1])
    assert len(first.history()[1]) == 3 and len(second.history()[1]) == 6
    assert Run.at(first.logs).finished() and Run.at(second.logs).finished()  # by its patience, or all epochs
    assert "seed0: Stopped early after round 3" in capsys.readouterr().out
    assert loop.run(cfg, resume=True, progress=False) == summaries  # nothing left to do for either


@pytest.mark.slow
def test_a_diverging_member_stops_alone_and_the_group_exits_3(plain_pair, tmp_path, monkeypatch, capsys):
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    own = members.Member.losses

    def losses(self, out):  # seed 1's E-step losses are not finite in round 2
        found = own(self, out)
        return {k: float("nan") for k in found} if (self.cfg.seed, self.next_round(), "d_loss" in found) == (
            1, 2, True) else found
    monkeypatch.setattr(members.Member, "losses", losses)
    assert run_tool("train", flags(tmp_path, *PLAIN, "--seeds", "0,1", "--epochs", EPOCHS)) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 1 of 2 members diverged (seed1 in round 2)")
    assert any(line.startswith("error: seed1: round 2: training diverged in the E-step") for line in err)
    first, second = member_runs(tmp_path, seeds=[0, 1])
    assert len(first.history()[1]) == 3 and len(second.history()[1]) == 1
    assert history_rows(first.logs) == history_rows(member_runs(plain_pair, seeds=[0])[0].logs)  # seed0 unharmed


def test_a_group_that_does_not_fit_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import tensorflow as tf
    make_dataset(str(tmp_path / "datasets" / "TINY"))

    def out_of_memory(*args):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4,512]")
    monkeypatch.setattr(members, "e_step_tracing_m_step", out_of_memory)
    assert run_tool("train", flags(tmp_path, "--seeds", "0,1,2,3", "--jit_compile", "false")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 4 members do not fit in the device's memory (OOM when allocating") and \
        "--seeds 0,1" in err and err.count("\n") == 1
    for run in member_runs(tmp_path, seeds=[0, 1, 2, 3]):
        assert not os.path.exists(run.path("config.yml")) and not run.dumps()


def test_eval_only_of_a_group_takes_each_members_own_checkpoint(tmp_path, capsys):
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    assert run_tool("train", flags(tmp_path, "--seeds", "0,1", "--eval_only", "--checkpoint", "x/ckpt-1")) == 2
    assert "--checkpoint with --seeds: best or latest" in capsys.readouterr().err
