"""End to end: the real script, in a subprocess where the process matters, on a tiny generated dataset."""
import glob
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT, TINY_FLAGS, make_dataset, run_exp_command, run_tool, unimportable
from zscrgan.config import OPT_IN
from zscrgan.data.dataset import save_dataset
from zscrgan.model.metrics import prec_from_records


def run(tmp_path, *args):
    cmd = [sys.executable, os.path.join(ROOT, "run_exp.py"),
           "--datasets_dir", str(tmp_path / "datasets"), "--results_dir", str(tmp_path / "res"),
           "--logs_dir", str(tmp_path / "logs"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))


@pytest.mark.slow
def test_two_rounds_write_a_dump_in_the_reference_format(tiny_run):
    base, said = tiny_run
    dumps = glob.glob(str(base / "res" / "TINY_res" / "acc*.pkl"))
    assert dumps and re.search(r"New best Prec@5 = \d\.\d{4}\n", said)  # 4 decimals; the name keeps all
    for path in dumps:
        score = os.path.basename(path)[len("acc"):-len(".pkl")]
        with open(path, "rb") as f:
            records = pickle.load(f)
        assert isinstance(records, list) and len(records) == 3 * 3  # 3 unseen classes x 3 texts
        for r in records:
            (cls, ids), = r.items()
            assert isinstance(cls, int) and len(ids) == 5 and all(isinstance(i, int) for i in ids)
            assert cls in (4, 5, 6) and set(ids) <= {4, 5, 6}
        assert prec_from_records(records) == float(score) and str(float(score)) == score
    logs = base / "logs" / "TINY_logs"
    cfg = yaml.safe_load((logs / "config.yml").read_text())
    assert cfg["dataset"] == "TINY" and cfg["gf_dim"] == 8 and cfg["epochs"] == 2
    assert not set(OPT_IN) & set(cfg)  # options off are absent (tf32 too): the reference's config.yml
    rows = (logs / "history.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    assert header[:2] == ["round", "prec_at_5"] and len(rows) == 3
    assert {"map_at_5", "d_loss", "g_loss", "kl_loss", "csem_loss", "e_step_s"} <= set(header)
    assert glob.glob(str(logs / "events.out.tfevents.*"))
    assert (logs / "latest" / "checkpoint").exists() and (logs / "best" / "checkpoint").exists()


@pytest.mark.slow
def test_the_readmes_demo_trains_on_the_bundled_mfeat_and_a_rerun_names_both_folders(tmp_path, monkeypatch, capsys):
    """`python run_exp.py --dataset MFEAT`, as README.md shows it, shortened to 2 rounds and
    run in this process from the clone's root (its datasets/ folder) into folders of the test's."""
    from zscrgan import cli
    monkeypatch.chdir(ROOT)
    folders = ["--logs_dir", str(tmp_path / "ckt_logs"), "--results_dir", str(tmp_path / "retrieved_res")]
    demo = lambda: cli.main(["--dataset", "MFEAT", "--epochs", "2", *folders], prog="run_exp.py", only="train")
    assert demo() == 0
    logs, res = tmp_path / "ckt_logs" / "MFEAT_logs", tmp_path / "retrieved_res" / "MFEAT_res"
    cfg = yaml.safe_load((logs / "config.yml").read_text())
    assert (cfg["gf_dim"], cfg["embed_dim"], cfg["epochs"]) == (256, 128, 2)  # configs/MFEAT.yml, then the flag
    assert len((logs / "history.csv").read_text().strip().splitlines()) == 1 + 2
    assert re.search(r"^Done: 2 rounds, best Prec@50 = \d\.\d{4}$", capsys.readouterr().out, re.M)
    dump, = glob.glob(str(res / "acc*.pkl"))
    with open(dump, "rb") as f:
        records = pickle.load(f)
    assert len(records) == 600 and {next(iter(r)) for r in records} == {3, 7, 8}  # 200 texts per unseen digit
    assert all(len(ids) == 50 for r in records for ids in r.values())
    # Run again: refused, and the one line names both folders to delete.
    assert demo() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"delete {logs} and {res}" in err[0], err


def test_unknown_dataset_is_one_line_and_status_2(tmp_path):
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    proc = run(tmp_path, "--dataset", "NOPE", "--epochs", "1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: dataset 'NOPE' not found") and "TINY" in lines[-1]
    assert "Getting the data" in lines[-1]


def test_bad_config_value_is_one_line_and_status_2(tmp_path):
    proc = run(tmp_path, "--dataset", "TINY", "--batch_size", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "batch_size" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_named_runs_get_their_own_folders_and_the_unnamed_run_keeps_the_reference_layout(tmp_path, capsys):
    """In this process (the folders are the question, not the process), in the plain graph."""
    make_dataset(str(tmp_path / "datasets" / "TINY"), n_img=20)
    flags = ["--datasets_dir", tmp_path / "datasets", "--results_dir", tmp_path / "res", "--logs_dir",
             tmp_path / "logs", "--dataset", "TINY", *TINY_FLAGS, "--jit_compile", "false"]
    for name in (None, "a", "b"):
        named = ["--run_name", name] if name else []
        assert run_tool("train", [*flags, "--epochs", "1", *named]) == 0
    res, logs = tmp_path / "res" / "TINY_res", tmp_path / "logs" / "TINY_logs"
    assert len(glob.glob(str(res / "acc*.pkl"))) == 1
    assert "run_name" not in yaml.safe_load((logs / "config.yml").read_text())
    for name in ("a", "b"):
        assert len(glob.glob(str(res / name / "acc*.pkl"))) == 1
        assert yaml.safe_load((logs / name / "config.yml").read_text())["run_name"] == name
        assert (logs / name / "latest" / "checkpoint").exists()
    capsys.readouterr()
    assert run_tool("train", [*flags[:6], "--dataset", "TINY", "--run_name", "a", "--resume", "--epochs", "2"]) == 0
    assert "Resuming from round 1" in capsys.readouterr().out
    assert len((logs / "a" / "history.csv").read_text().strip().splitlines()) == 3


def test_a_run_name_that_is_no_folder_name_is_refused(tmp_path):
    for bad in ("a/b", "../x", "latest", ".hidden", "retrieve", "plots"):
        proc = run(tmp_path, "--dataset", "TINY", "--run_name", bad)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(f"error: run_name {bad!r}")
    assert not (tmp_path / "logs").exists()


def test_a_dataset_the_model_cannot_serve_is_loaded_with_warnings(tmp_path):
    """Negative image features and a single unseen class: the reference ran on them, so the
    run goes on, but says why its Prec@K means little."""
    rng = np.random.default_rng(0)
    text = {c: rng.normal(size=(2, 6)) for c in range(5)}
    images = {c: rng.normal(size=(60, 5)) for c in range(5)}
    save_dataset(str(tmp_path / "datasets" / "ODD"), text, images, [0, 1, 2, 3], [4])
    proc = run(tmp_path, "--dataset", "ODD", "--epochs", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warned = [line for line in proc.stderr.splitlines()  # the dataset's: not the shared compile cache's
              if line.startswith("warning: ") and not line.startswith("warning: compile cache")]
    assert len(warned) == 2, proc.stderr[-2000:]
    assert "only one unseen class (4)" in warned[0] and "Prec@50 is 1.0" in warned[0]
    assert "image features go down to" in warned[1]


def test_nothing_to_do_and_a_refused_resume_start_no_tensorflow(tmp_path):
    """Both end before the model is built: with a `tensorflow` that cannot be imported first on
    the path, they still end as they should (a refusal is a fraction of a second, not a TensorFlow start)."""
    make_dataset(str(tmp_path / "datasets" / "TINY"))

    def run_poisoned(*args):
        cmd, env = run_exp_command(tmp_path, *args)
        env["PYTHONPATH"] = unimportable("tensorflow", "ImportError")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path), env=env)

    proc = run_poisoned("--epochs", "0", *TINY_FLAGS)
    assert proc.returncode == 0 and "Nothing to do" in proc.stdout, proc.stderr[-2000:]
    proc = run_poisoned("--resume", "--gf_dim", "16")
    assert proc.returncode == 2 and "tensorflow was imported" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot resume")


def test_help_describes_every_option_with_its_type_and_default(tmp_path):
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0 and "see configs/default.yml" not in proc.stdout
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    defaults = yaml.safe_load(open(os.path.join(ROOT, "configs", "default.yml")))
    for key, default in defaults.items():
        entry = re.search(rf" --{key} ([A-Z]+|\S+\|\S+) (.*?)(?= --\w+ ([A-Z]+|\S+\|\S+) | Defaults are)", text)
        assert entry, key
        metavar, help_text = entry.groups()[:2]
        assert metavar in {"INT", "FLOAT", "BOOL", "LIST", "DIR", "NAME", "test|val", "N|IDS|file"}, key
        assert len(help_text) > 10, key
        if default is not None:
            shown = (",".join(map(str, default)) if isinstance(default, list)
                     else str(default).lower() if isinstance(default, bool) else str(default))
            assert help_text.endswith(f"(default: {shown})"), (key, help_text)


# The lines TensorFlow prints before its logging starts, which no log level hides (README.md lists them).
TF_START_LINES = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                            r"|I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"
                            r"|I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, .*)$")


@pytest.mark.slow
def test_a_user_sees_only_the_start_up_lines_the_readme_lists(tmp_path):
    """The package sets TF_CPP_MIN_LOG_LEVEL=3 unless the user did (zscrgan/__init__.py): with the
    compile cache cold and then warm, stderr holds nothing of TensorFlow's but its start-up lines."""
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_XLA_FLAGS")}
    env["ZSCRGAN_COMPILE_CACHE"] = str(tmp_path / "xla")  # its own cache, cold and then warm
    for name in ("cold", "warm"):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "run_exp.py"), "--dataset", "TINY", "--run_name",
                               name, "--epochs", "1", "--datasets_dir", str(tmp_path / "datasets"), "--results_dir",
                               str(tmp_path / "res"), "--logs_dir", str(tmp_path / "logs"), *TINY_FLAGS],
                              cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = [line for line in re.split(r"[\r\n]", proc.stderr) if line.strip()
                 and not line.startswith("TINY:") and not line.strip().startswith("New best")]
        assert all(TF_START_LINES.match(line) for line in lines), (name, lines)
