"""Sweeps on Ray Tune: checks before Ray starts, a local sweep, a killed driver resumed, failed
trials retried, a two-node cluster.

The sweeps run the real command (`python -m zscrgan sweep`) in subprocesses on tiny datasets, from a folder of their own, with relative paths.
Every Ray a test starts is stopped by its own handle: the driver's `ray.shutdown()`, the
session of a killed driver, `cluster.shutdown()`. Faults come from the ZSCRGAN_FAULT hook
(zscrgan/files.py): a real SIGKILL at a chosen point. Tests of bad input run the tool in
this process with `ray.init` replaced by a failure, so they also show that Ray never starts.
"""
import csv
import glob
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, TINY_FLAGS, dump_bytes, history_rows, make_dataset, no_keras_path
from zscrgan import cli
from zscrgan.results import trials as results
from zscrgan.results.trials import Trial
from zscrgan.sweeps import plan, tune

EPOCHS = 4
SETTINGS = {TINY_FLAGS[i][2:]: yaml.safe_load(TINY_FLAGS[i + 1]) for i in range(0, len(TINY_FLAGS), 2)}
SETTINGS.update(epochs=EPOCHS, jit_compile=False)


def new_base(path, *datasets):
    for i, name in enumerate(datasets):
        make_dataset(str(path / "datasets" / name), seed=i)
    return path


def write_sweep(base, datasets, seeds, name="sweep.yml"):
    (base / name).write_text(yaml.safe_dump({"datasets": datasets, "seeds": seeds, "set": SETTINGS}))
    return name


def env(**extra):
    """The sweep driver's environment, and its Ray workers': the clone on the path, Keras not importable."""
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, no_keras_path()]), TF_CPP_MIN_LOG_LEVEL="3")
    e.pop("ZSCRGAN_FAULT", None)
    return {**e, **extra}


def start_sweep(base, *args, **extra_env):
    """The sweep driver in a session of its own, so that everything it starts can be found."""
    return subprocess.Popen([sys.executable, "-m", "zscrgan", "sweep", *args], cwd=str(base), env=env(**extra_env),
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


def starts(out):
    """{"<dataset>/<trial>": start.yml} of a sweep folder: where each trial's latest attempt started."""
    return {key: results.read_start(trial_files(out, key)[0]) for key in statuses(out)}


def outcome(out, key):
    """What a deterministic trial must reproduce: its history without timings, and its dumps."""
    logs, results = trial_files(out, key)
    return history_rows(logs), dump_bytes(results)


def diverging_dataset(folder):
    """A dataset that loads (every value finite) but whose losses are NaN in round 1."""
    make_dataset(str(folder))
    path = folder / "txt_embed_dict.pkl"
    text = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({c: v * 1e30 for c, v in text.items()}, protocol=2))


def tool(*argv):
    """The sweep tool in this process, as `python -m zscrgan sweep` runs it."""
    return cli.main(list(argv), prog="zscrgan sweep", only="sweep")


@pytest.fixture
def no_ray(monkeypatch):
    """ray.init fails the test: bad input must be refused before Ray starts."""
    import ray

    def refuse(*args, **kwargs):
        pytest.fail("ray.init was called")

    monkeypatch.setattr(ray, "init", refuse)
    yield
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """An uninterrupted local sweep of 2 datasets x 2 seeds, 2 trials at a time."""
    base = new_base(tmp_path_factory.mktemp("local"), "TINY", "TINY2")
    rc, out, err = run_sweep(base, write_sweep(base, ["TINY", "TINY2"], [0, 1]), "--out", "out")
    assert rc == 0, (out[-2000:], err[-2000:])  # stdout names a failed trial and its error
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
        assert Trial.read(trial_files(out, key)[0]).status == status
        logs, res = trial_files(out, key)
        assert len(history_rows(logs)) == EPOCHS and dump_bytes(res)
        saved = yaml.safe_load(open(os.path.join(logs, "config.yml")))
        assert saved["run_name"] == status["trial"] and saved["threads"] == 1
        assert saved["datasets_dir"] == os.path.join(os.path.dirname(out), "datasets")
    assert results.trial_folders(str(out)) == sorted(trial_files(out, k)[0] for k in found)
    # Two workers at a time, each kept for its next trial: TensorFlow started in fewer processes than trials.
    started = starts(out)
    assert len({s["pid"] for s in started.values()}) < len(started)
    for key, s in started.items():
        assert s["trial_in_process"] >= 1 and s["build_s"] > 0 and s["compile_s"] is not None, key
        assert (s["process_s"] > 0 and s["tf_import_s"] > 0) == (s["trial_in_process"] == 1), key
        assert s["device"] == "CPU", key  # gpus: 0: Ray hides any GPU from the trial
    resolved = yaml.safe_load(open(out / "sweep.yml"))
    assert resolved["datasets"] == ["TINY", "TINY2"] and resolved["resources"] == {"cpus": 1, "gpus": 0}
    assert "sweep out: 4 finished" in stdout
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(out / "summary.csv", newline="") as f:
        summary = {row["dataset"]: row for row in csv.DictReader(f)}
    assert len(rows) == 4 and sorted(summary) == ["TINY", "TINY2"]
    for name, row in summary.items():  # mean and sample std of the two seeds, by hand
        a, b = (float(r["best_prec_at_5"]) for r in rows if r["dataset"] == name)
        assert row["finished"] == "2"
        assert float(row["best_prec_at_5_mean"]) == pytest.approx((a + b) / 2)
        assert float(row["best_prec_at_5_std"]) == pytest.approx(abs(a - b) / 2 ** 0.5)


@pytest.mark.slow
def test_the_console_shows_the_sweeps_lines_and_tune_writes_to_its_log(local_sweep):
    out, stdout = local_sweep
    assert not [l for l in stdout.splitlines() if l.startswith(("+--", "│", "╭", "Trial status"))], stdout
    started = [l for l in stdout.splitlines() if l.startswith("[started] ")]
    finished = [l for l in stdout.splitlines() if l.startswith("[finished] ")]
    assert len(started) == 4 and len(finished) == 4
    assert all(re.search(r": 4 rounds, \d+ s, best Prec@5 [01]\.\d{4}$", l) for l in finished), finished
    log = (out / tune.TUNE_LOG).read_text()
    assert "Trial status" in log  # Tune's status tables went to the log


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
    assert history_rows(base / "ckt_logs" / "TINY_logs") == rows
    assert dump_bytes(base / "retrieved_res" / "TINY_res") == files
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
    # One worker ran both, the second on the first's kernels: the resumed run must still equal the reference.
    first, second = starts(out)[done[0]], starts(out)[cut[0]]
    assert second["pid"] == first["pid"] and second["trial_in_process"] == first["trial_in_process"] + 1
    assert second["reused_kernels"] and second["trace_s"] == 0 and not first["reused_kernels"]
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


@pytest.mark.slow
def test_retry_failed_runs_a_failed_trial_again(local_sweep, tmp_path):
    """A diverging trial fails and is not retried; its data mended, --resume leaves it failed
    and --resume --retry_failed runs it: it then equals the same trial of the good data."""
    reference, _ = local_sweep
    base = tmp_path
    diverging_dataset(base / "datasets" / "DATA")
    name = write_sweep(base, ["DATA"], [0])
    rc, stdout, err = run_sweep(base, name, "--out", "out")
    assert rc == 1, err[-3000:]
    out = base / "out"
    failed = statuses(out)["DATA/seed0"]
    assert failed["status"] == "failed" and failed["attempts"] == 1 and "diverged" in failed["error"]
    assert "--resume --retry_failed" not in stdout and "[--retry_failed]" in stdout

    shutil.rmtree(base / "datasets" / "DATA")
    make_dataset(str(base / "datasets" / "DATA"), seed=0)  # TINY's data
    rc, stdout, _ = run_sweep(base, "--out", "out", "--resume")
    assert rc == 1 and "1 trials, 0 to run" in stdout and statuses(out)["DATA/seed0"] == failed
    rc, stdout, err = run_sweep(base, "--out", "out", "--resume", "--retry_failed")
    assert rc == 0, err[-3000:]
    assert "1 trials, 1 to run" in stdout and "1 finished" in stdout
    status = statuses(out)["DATA/seed0"]
    assert status["status"] == "finished" and status["error"] is None and status["attempts"] == 2
    assert status["rounds_done"] == EPOCHS
    assert outcome(out, "DATA/seed0") == outcome(reference, "TINY/seed0")


@pytest.mark.slow
def test_two_node_cluster_retries_dead_trials_and_records_a_failed_one(local_sweep, tmp_path, monkeypatch):
    """Each good trial's process SIGKILLs itself in round 3 once (ZSCRGAN_FAULT is set on the
    cluster's nodes) and is resumed; the diverging dataset's trial fails without a retry."""
    import ray.cluster_utils

    reference, _ = local_sweep
    base = new_base(tmp_path, "TINY", "TINY2")
    diverging_dataset(base / "datasets" / "DIV")
    name = write_sweep(base, ["TINY", "TINY2", "DIV"], [0])
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
    bad = found.pop("DIV/seed0")
    assert bad["status"] == "failed" and bad["attempts"] == 1 and bad["rounds_done"] == 0
    assert "diverged" in bad["error"] and "\n" not in bad["error"]
    assert f"failed DIV/seed0: {bad['error']}" in stdout
    assert "raylet" not in stdout and "[retrying] TINY/seed0" in stdout  # Ray's notes of dead workers: in the log
    assert (out / tune.TUNE_LOG).is_file()
    for key, status in found.items():
        assert status["status"] == "finished" and status["attempts"] == 2, key
        assert outcome(out, key) == outcome(reference, key), key
    used = set()
    for path in glob.glob(str(out / "ray" / "*" / "*" / "result.json")):
        used |= {yaml.safe_load(line)["node_id"] for line in open(path)}
    assert used == nodes and len(nodes) == 2


def refused(capsys, *argv):
    """Run the tool on bad input: exit status 2 and one `error:` line; returns the line."""
    assert tool(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_bad_sweep_files_are_refused_before_anything_starts(tmp_path, capsys, no_ray):
    good = {"datasets": ["TINY"], "seeds": [0]}
    cases = [
        ({**good, "sets": {}}, "unknown key 'sets'"),
        ({"datasets": ["TINY"]}, "'seeds' is missing"),
        ({**good, "set": {"epoch": 3}}, "set: unknown key 'epoch'"),
        ({**good, "set": {"epochs": "many"}}, "set: key 'epochs' must be int"),
        ({**good, "set": {"epochs": -1}}, "epochs = -1 is out of range"),
        ({**good, "set": {"seed": 3}}, "set: 'seed' is set by the sweep"),
        ({**good, "set": {"seeds": [0, 1]}}, "set: 'seeds' is not a trial's setting"),
        ({**good, "grid": {"seeds": [[0], [1]]}}, "grid: 'seeds' is not a trial's setting"),
        ({**good, "grid": {"CSEM_lr": [0.1, "fast"]}}, "grid: key 'CSEM_lr' must be float"),
        ({**good, "grid": {"CSEM_lr": [1, 1.0]}}, "two trials would both be TINY/seed0_CSEM_lr=1.0"),
        ({**good, "seeds": [0, 0]}, "seeds lists a value twice"),
        ({**good, "resources": {"cpus": 0}}, "cpus must be an integer >= 1"),
        ({**good, "resources": {"gpus": 1.5}}, "gpus must be 0, a share of one GPU between 0 and 1"),
        ({**good, "resources": {"gpus": -1}}, "or a whole number of GPUs, got -1"),
        ({**good, "resources": {"gpus": -0.5}}, "got -0.5"),
        ({**good, "resources": {"gpus": True}}, "got True"),
        ({**good, "resources": {"gpus": "half"}}, "got 'half'"),
    ]
    for sweep_file, message in cases:
        path = tmp_path / "s.yml"
        path.write_text(yaml.safe_dump(sweep_file))
        err = refused(capsys, str(path), "--out", str(tmp_path / "out"))
        assert err.startswith(f"error: {path}: ") and message in err, err
        assert not (tmp_path / "out").exists()


def test_a_gpu_share_or_whole_gpus_are_accepted(tmp_path):
    path = tmp_path / "s.yml"
    for given, kept in [(0.25, 0.25), (0.5, 0.5), (0, 0), (0.0, 0), (1, 1), (2.0, 2)]:
        path.write_text(yaml.safe_dump({"datasets": ["TINY"], "seeds": [0], "resources": {"gpus": given}}))
        resources = plan.load_sweep(str(path))["resources"]
        assert resources == {"cpus": 1, "gpus": kept} and type(resources["gpus"]) is type(kept), given


@pytest.mark.slow
@pytest.mark.skipif(bool(glob.glob("/proc/driver/nvidia/gpus/*")), reason="this machine has a GPU")
def test_gpus_the_machine_lacks_are_refused_before_any_trial_starts(tmp_path, capsys, monkeypatch):
    """A share of a GPU as much as a whole one: Ray starts, finds no node with a GPU, and stops.
    The whole GPU is checked against the nodes the first, real, start found (one Ray start)."""
    import ray
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    found, real_nodes = [], ray.nodes

    def nodes():  # what the real start found, kept for the second case
        found.extend([] if found else real_nodes())
        return found

    monkeypatch.setattr(ray, "nodes", nodes)
    try:
        for gpus in (0.25, 1):
            if found:  # the second time: the nodes of the first start, without starting Ray again
                monkeypatch.setattr(ray, "init", lambda *args, **kwargs: None)
            path = tmp_path / "s.yml"
            path.write_text(yaml.safe_dump({"datasets": ["TINY"], "seeds": [0], "resources": {"gpus": gpus},
                                            "set": {"datasets_dir": str(tmp_path / "datasets")}}))
            err = refused(capsys, str(path), "--out", str(tmp_path / f"out{gpus}"))
            assert f"error: resources: no Ray node has 1 CPUs and {gpus} GPUs (the nodes have " in err, err
            assert err.endswith("; set resources: {gpus: 0} to run the trials on CPUs\n"), err
            assert not ray.is_initialized() and not statuses(tmp_path / f"out{gpus}")  # no trial was made
    finally:
        ray.shutdown()


def test_a_yaml_error_names_its_line_and_column(tmp_path, capsys, no_ray):
    path = tmp_path / "s.yml"
    path.write_text("datasets: [TINY]\nseeds: [0, 1\nset: {epochs: 3}\n")
    err = refused(capsys, str(path), "--out", str(tmp_path / "out"))
    assert err.startswith(f"error: {path}: not valid YAML at line ") and re.search(r"line \d+, column \d+", err)
    assert not (tmp_path / "out").exists()


def test_a_missing_or_invalid_dataset_is_refused_before_ray_starts(tmp_path, capsys, no_ray):
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    (tmp_path / "datasets" / "BAD").mkdir()
    (tmp_path / "datasets" / "BAD" / "trainids.pkl").write_bytes(pickle.dumps([0, 1])[:-3])
    for name, message in [("NOPE", "dataset 'NOPE' not found"), ("BAD", "is missing")]:
        path = tmp_path / "s.yml"
        path.write_text(yaml.safe_dump({"datasets": ["TINY", name], "seeds": [0],
                                        "set": {"datasets_dir": str(tmp_path / "datasets")}}))
        err = refused(capsys, str(path), "--out", str(tmp_path / "out"))
        assert err.startswith(f"error: {path}: dataset {name}: ") and message in err, err
        assert not (tmp_path / "out").exists()


def test_an_address_where_no_ray_answers_is_refused_at_once(tmp_path, capsys, monkeypatch, no_ray):
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump({"datasets": ["TINY"], "seeds": [0],
                                    "set": {"datasets_dir": str(tmp_path / "datasets")}}))
    with socket.socket() as s:  # a port that nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = refused(capsys, str(path), "--out", str(tmp_path / "out"), "--address", f"127.0.0.1:{port}")
    assert f"no Ray answers at 127.0.0.1:{port}" in err
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")  # what `auto` finds first
    err = refused(capsys, str(path), "--out", str(tmp_path / "out"), "--address", "auto")
    assert f"--address auto: no Ray answers at 127.0.0.1:{port}" in err
    assert "HOST:PORT" in refused(capsys, str(path), "--out", str(tmp_path / "out"), "--address", "nowhere")
    assert not (tmp_path / "out").exists()


def test_refused_flags(tmp_path, capsys, no_ray):
    assert "--retry_failed needs --resume" in refused(capsys, "s.yml", "--out", str(tmp_path), "--retry_failed")
    assert "--max_concurrent" in refused(capsys, "s.yml", "--out", str(tmp_path), "--max_concurrent", "0")
    assert "a sweep file is needed" in refused(capsys, "--out", str(tmp_path))


def test_an_existing_sweep_is_not_overwritten(tmp_path, capsys, no_ray):
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump({"datasets": ["TINY"], "seeds": [0]}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.yml").write_text("kept")
    assert "already holds a sweep: continue it with --resume" in refused(capsys, str(path), "--out", str(out))
    assert (out / "sweep.yml").read_text() == "kept"
    assert "holds no sweep" in refused(capsys, "--out", str(tmp_path / "none"), "--resume")


def test_trials_are_named_by_their_seed_and_grid_values_in_the_files_order(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump({"datasets": ["TINY"], "seeds": [0, 3], "set": {"epochs": 2},
                                    "grid": {"eval_ks": [[5, 10]], "jit_compile": [True, False]}}, sort_keys=False))
    trials = plan.trial_configs(plan.load_sweep(str(path)), str(path), str(tmp_path / "out"))
    assert list(trials)[:2] == ["TINY/seed0_eval_ks=5+10_jit_compile=True", "TINY/seed0_eval_ks=5+10_jit_compile=False"]
    cfg = trials["TINY/seed3_eval_ks=5+10_jit_compile=True"]
    assert cfg["run_name"] == results.trial_label(3, {"eval_ks": [5, 10], "jit_compile": True})
    assert (cfg["logs_dir"], cfg["results_dir"]) == results.sweep_dirs(str(tmp_path / "out"))
    assert cfg["epochs"] == 2 and cfg["seed"] == 3 and cfg["threads"] == 1


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_the_bundled_sweep_files_give_valid_trials(name, monkeypatch):
    """configs/sweeps/*.yml, which README.md runs: every trial's config resolves; the demo's datasets load."""
    monkeypatch.chdir(ROOT)  # the sweep's datasets_dir is relative to where it starts
    path = os.path.join(ROOT, "configs", "sweeps", f"{name}.yml")
    trials = plan.trial_configs(plan.load_sweep(path), path, "out")
    assert len(trials) == {"demo": 5, "paper": 35}[name]
    if name == "demo":
        assert all(cfg["gf_dim"] == 256 and cfg["threads"] == 1 for cfg in trials.values())  # configs/MFEAT.yml
        plan.check_datasets(trials, path)


def test_a_dead_trials_error_is_the_first_line_of_its_last_failure():
    text = ("Failure # 1 (occurred at 2026-01-01_00-00-00)\nThe actor died unexpectedly.\n\tpid: 1\n"
            "Failure # 2 (occurred at 2026-01-01_00-01-00)\nThe node was lost.\n\tpid: 2\n")
    assert tune.error_line(text) == "The node was lost."
    assert tune.error_line("") == "its process died"
