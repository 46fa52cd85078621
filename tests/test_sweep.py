"""Sweeps on Ray Tune: a local sweep, a killed driver resumed, failed trials, a two-node cluster.

The sweeps run the real command (`python -m zscrgan.sweep`) in subprocesses on tiny datasets,
from a folder of their own, with relative paths. Every Ray a test starts is stopped by its
own handle: the driver's `ray.shutdown()`, the session of a killed driver, `cluster.shutdown()`.
Faults come from the ZSCRGAN_FAULT hook (zscrgan/runfiles.py): a real SIGKILL at a chosen point.
"""
import csv
import glob
import os
import pickle
import signal
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, TINY_FLAGS, make_dataset
from zscrgan import sweep

EPOCHS = 4
SETTINGS = {TINY_FLAGS[i][2:]: yaml.safe_load(TINY_FLAGS[i + 1]) for i in range(0, len(TINY_FLAGS), 2)}
SETTINGS.update(epochs=EPOCHS, jit_compile=False)
TIMING = {"e_step_s", "m_step_s", "eval_s"}


def new_base(path, *datasets):
    for i, name in enumerate(datasets):
        make_dataset(str(path / "datasets" / name), seed=i)
    return path


def write_sweep(base, datasets, seeds, name="sweep.yml"):
    (base / name).write_text(yaml.safe_dump({"datasets": datasets, "seeds": seeds, "set": SETTINGS}))
    return name


def env(**extra):
    e = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    e.pop("ZSCRGAN_FAULT", None)
    return {**e, **extra}


def start_sweep(base, *args, **extra_env):
    """The sweep driver in a session of its own, so that everything it starts can be found."""
    return subprocess.Popen([sys.executable, "-m", "zscrgan.sweep", *args], cwd=str(base), env=env(**extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run_sweep(base, *args, **extra_env):
    proc = start_sweep(base, *args, **extra_env)
    out, err = proc.communicate(timeout=600)
    kill_session(proc.pid)
    return proc.returncode, out, err


def session_pids(sid):
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            pids.append(int(stat.split("/")[2]))
    return pids


def kill_session(sid):
    """Kill what is left of a driver's session (a killed driver leaves some of Ray's helpers)."""
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def statuses(out):
    """{"<dataset>/<trial>": status.yml} of a sweep folder."""
    found = {}
    for path in glob.glob(os.path.join(out, "logs", "*_logs", "*", "status.yml")):
        status = yaml.safe_load(open(path))
        found[f"{status['dataset']}/{status['trial']}"] = status
    return found


def trial_files(out, key):
    dataset, trial = key.split("/")
    return os.path.join(out, "logs", f"{dataset}_logs", trial), os.path.join(out, "results", f"{dataset}_res", trial)


def history(folder):
    with open(os.path.join(folder, "history.csv"), newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def dumps(folder):
    return {os.path.basename(p): open(p, "rb").read() for p in glob.glob(os.path.join(folder, "acc*.pkl"))}


def outcome(out, key):
    """What a deterministic trial must reproduce: its history without timings, and its dumps."""
    logs, results = trial_files(out, key)
    return history(logs), dumps(results)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """An uninterrupted local sweep of 2 datasets x 2 seeds, 2 trials at a time."""
    base = new_base(tmp_path_factory.mktemp("local"), "TINY", "TINY2")
    rc, out, err = run_sweep(base, write_sweep(base, ["TINY", "TINY2"], [0, 1]), "--out", "out")
    assert rc == 0, err[-3000:]
    return base / "out", out


@pytest.mark.slow
def test_local_sweep_runs_every_trial_as_an_ordinary_run(local_sweep):
    out, stdout = local_sweep
    found = statuses(out)
    assert sorted(found) == ["TINY/seed0", "TINY/seed1", "TINY2/seed0", "TINY2/seed1"]
    for key, status in found.items():
        assert status["status"] == "finished" and status["error"] is None, key
        assert status["rounds_done"] == EPOCHS and status["attempts"] == 1 and status["seconds"] > 0
        assert status["grid"] == {} and status["node"]
        logs, results = trial_files(out, key)
        assert len(history(logs)) == EPOCHS and dumps(results)
        saved = yaml.safe_load(open(os.path.join(logs, "config.yml")))
        assert saved["run_name"] == status["trial"] and saved["threads"] == 1
        assert saved["datasets_dir"] == os.path.join(os.path.dirname(out), "datasets")
    resolved = yaml.safe_load(open(out / "sweep.yml"))
    assert resolved["datasets"] == ["TINY", "TINY2"] and resolved["resources"] == {"cpus": 1, "gpus": 0}
    assert "sweep out: 4 finished" in stdout
    with open(out / "results.csv", newline="") as f:
        results = list(csv.DictReader(f))
    with open(out / "summary.csv", newline="") as f:
        summary = {row["dataset"]: row for row in csv.DictReader(f)}
    assert len(results) == 4 and sorted(summary) == ["TINY", "TINY2"]
    for name, row in summary.items():  # mean and sample std of the two seeds, by hand
        a, b = (float(r["best_prec_at_5"]) for r in results if r["dataset"] == name)
        assert row["finished"] == "2"
        assert float(row["best_prec_at_5_mean"]) == pytest.approx((a + b) / 2)
        assert float(row["best_prec_at_5_std"]) == pytest.approx(abs(a - b) / 2 ** 0.5)


@pytest.mark.slow
def test_a_trial_equals_a_standalone_run(local_sweep, tmp_path):
    """Same dataset, settings, seed and thread count as TINY/seed1: the same rounds and dumps."""
    out, _ = local_sweep
    base = new_base(tmp_path, "TINY")
    flags = [f"--{k}={v}" for k, v in SETTINGS.items()]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "run_exp.py"), "--dataset", "TINY", *flags,
                           "--seed", "1", "--threads", "1"], cwd=str(base), env=env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows, files = outcome(out, "TINY/seed1")
    assert history(base / "ckt_logs" / "TINY_logs") == rows
    assert dumps(base / "retrieved_res" / "TINY_res") == files
    best = max(float(r["prec_at_5"]) for r in rows)
    assert max(float(name[3:-4]) for name in files) == best


@pytest.mark.slow
def test_killed_driver_resumed_matches_the_uninterrupted_sweep(local_sweep, tmp_path):
    """The driver SIGKILLs itself at its 6th round result: one trial finished, the other at round 2."""
    reference, _ = local_sweep
    base = new_base(tmp_path, "TINY")
    name = write_sweep(base, ["TINY"], [0, 1])
    rc, _, err = run_sweep(base, name, "--out", "out", "--max_concurrent", "1",
                           ZSCRGAN_FAULT=f"sweep:result,{EPOCHS + 2},KILL")
    assert rc == -signal.SIGKILL, err[-3000:]
    out = base / "out"
    before = statuses(out)
    done = [k for k, s in before.items() if s["status"] == "finished"]
    cut = [k for k, s in before.items() if s["status"] == "running"]
    assert len(done) == 1 and len(cut) == 1 and before[cut[0]]["rounds_done"] == 2
    finished_history = open(os.path.join(trial_files(out, done[0])[0], "history.csv")).read()

    rc, stdout, err = run_sweep(base, name, "--out", "out", "--resume")
    assert rc == 0, err[-3000:]
    assert "2 trials, 1 to run" in stdout
    after = statuses(out)
    assert all(s["status"] == "finished" and s["rounds_done"] == EPOCHS for s in after.values())
    assert after[done[0]] == before[done[0]]   # not run again
    assert open(os.path.join(trial_files(out, done[0])[0], "history.csv")).read() == finished_history
    assert after[cut[0]]["attempts"] == 2
    for key in after:
        assert outcome(out, key) == outcome(reference, key), key


def corrupt_dataset(folder):
    make_dataset(str(folder))
    (folder / "trainids.pkl").write_bytes(pickle.dumps([0, 1])[:-3])


@pytest.mark.slow
def test_two_node_cluster_retries_dead_trials_and_records_a_failed_one(local_sweep, tmp_path, monkeypatch):
    """Each good trial's process SIGKILLs itself in round 3 once (ZSCRGAN_FAULT is set on the
    cluster's nodes) and is resumed; the bad dataset's trial fails without a retry."""
    import ray.cluster_utils

    reference, _ = local_sweep
    base = new_base(tmp_path, "TINY", "TINY2")
    corrupt_dataset(base / "datasets" / "BAD")
    name = write_sweep(base, ["TINY", "TINY2", "BAD"], [0])
    monkeypatch.setenv("ZSCRGAN_FAULT", "after_e_step,3,KILL")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    cluster = ray.cluster_utils.Cluster(initialize_head=True,
                                        head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        nodes = {n.node_id for n in cluster.list_all_nodes()}
        rc, stdout, err = run_sweep(base, name, "--out", "out", "--address", cluster.address)
    finally:
        cluster.shutdown()
    assert rc == 1, err[-3000:]
    out = base / "out"
    found = statuses(out)
    bad = found.pop("BAD/seed0")
    assert bad["status"] == "failed" and bad["attempts"] == 1 and bad["rounds_done"] == 0
    assert "trainids.pkl" in bad["error"] and "\n" not in bad["error"]
    assert f"failed BAD/seed0: {bad['error']}" in stdout
    for key, status in found.items():
        assert status["status"] == "finished" and status["attempts"] == 2, key
        assert outcome(out, key) == outcome(reference, key), key
    used = set()
    for path in glob.glob(str(out / "ray" / "*" / "*" / "result.json")):
        used |= {yaml.safe_load(line)["node_id"] for line in open(path)}
    assert used == nodes and len(nodes) == 2


def test_bad_sweep_files_are_refused_before_anything_starts(tmp_path, capsys):
    good = {"datasets": ["TINY"], "seeds": [0]}
    cases = [
        ({**good, "sets": {}}, "unknown key 'sets'"),
        ({"datasets": ["TINY"]}, "'seeds' is missing"),
        ({**good, "set": {"epoch": 3}}, "set: unknown key 'epoch'"),
        ({**good, "set": {"epochs": "many"}}, "set: key 'epochs' must be int"),
        ({**good, "set": {"epochs": -1}}, "epochs = -1 is out of range"),
        ({**good, "set": {"seed": 3}}, "set: 'seed' is set by the sweep"),
        ({**good, "grid": {"CSEM_lr": [0.1, "fast"]}}, "grid: key 'CSEM_lr' must be float"),
        ({**good, "grid": {"CSEM_lr": [1, 1.0]}}, "two trials would both be TINY/seed0_CSEM_lr=1.0"),
        ({**good, "seeds": [0, 0]}, "seeds lists a value twice"),
        ({**good, "resources": {"cpus": 0}}, "cpus must be an integer >= 1"),
    ]
    for sweep_file, message in cases:
        path = tmp_path / "s.yml"
        path.write_text(yaml.safe_dump(sweep_file))
        assert sweep.main([str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: ") and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists()


def test_an_existing_sweep_is_not_overwritten(tmp_path, capsys):
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump({"datasets": ["TINY"], "seeds": [0]}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.yml").write_text("kept")
    assert sweep.main([str(path), "--out", str(out)]) == 2
    assert "already holds a sweep: continue it with --resume" in capsys.readouterr().err
    assert (out / "sweep.yml").read_text() == "kept"
    assert sweep.main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no sweep" in capsys.readouterr().err


def test_trial_names_follow_the_grid_order():
    assert sweep.trial_name(3, {}) == "seed3"
    assert sweep.trial_name(0, {"CSEM_lr": 0.001, "eval_ks": [5, 10]}) == "seed0_CSEM_lr=0.001_eval_ks=5+10"


def test_a_dead_trials_error_is_the_first_line_of_its_last_failure():
    text = ("Failure # 1 (occurred at 2026-01-01_00-00-00)\nThe actor died unexpectedly.\n\tpid: 1\n"
            "Failure # 2 (occurred at 2026-01-01_00-01-00)\nThe node was lost.\n\tpid: 2\n")
    assert sweep.error_line(text) == "The node was lost."
    assert sweep.error_line("") == "its process died"
