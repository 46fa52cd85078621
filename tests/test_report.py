"""The report: a hand-built sweep folder (status.yml, config.yml, history.csv per trial), one run's
logs folder, bad input, and a real run's folder from run_exp.py."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import make_dataset, run_tool

from zscrgan.model import baselines as zb
from zscrgan.sweeps import report as zr
from zscrgan.data.dataset import load_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "round,prec_at_5,map_at_5,d_loss,g_loss,kl_loss,csem_loss,e_step_s,m_step_s,eval_s"
PNG = b"\x89PNG\r\n\x1a\n"


def write_trial(out, dataset, seed, status, precs, grid=None, maps=None, val=None, datasets_dir="datasets",
                error=None, select=None):
    """One trial folder as the sweep writes it; precs[i] is round i+1's test Prec@5."""
    grid = grid or {}
    name = f"seed{seed}" + "".join(f"_{k}={v}" for k, v in grid.items())
    folder = out / "logs" / f"{dataset}_logs" / name
    folder.mkdir(parents=True)
    (folder / "status.yml").write_text(yaml.safe_dump(
        {"dataset": dataset, "seed": seed, "grid": grid, "trial": name, "status": status, "error": error,
         "rounds_done": len(precs), "seconds": 1.5 * len(precs), "attempts": 1, "node": "here"}, sort_keys=False))
    cfg = {"dataset": dataset, "datasets_dir": str(datasets_dir), "seed": seed, "top_k": 5, **grid}
    if select:
        cfg["select"] = select
    (folder / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    maps = maps or [p / 2 for p in precs]
    header = HEADER + (",val_prec_at_5" if val else "")
    lines = [f"{r},{p},{m},-0.5,-9.0,0.1,0.6,0.4,0.05,0.01" + (f",{val[r - 1]}" if val else "")
             for r, (p, m) in enumerate(zip(precs, maps), 1)]
    (folder / "history.csv").write_text("\n".join([header] + lines) + "\n")
    return folder


@pytest.fixture
def sweep(tmp_path):
    """2 datasets x 2 seeds with a one-value grid; B's seed 1 failed."""
    datasets = tmp_path / "datasets"
    make_dataset(str(datasets / "A"), seed=1)
    make_dataset(str(datasets / "B"), seed=2)
    out = tmp_path / "sweep"
    lr = {"CSEM_lr": 0.001}
    write_trial(out, "A", 0, "finished", [0.3, 0.6, 0.6, 0.5], lr, maps=[0.1, 0.4, 0.45, 0.3], datasets_dir=datasets)
    write_trial(out, "A", 1, "finished", [0.4, 0.5, 0.7], lr, maps=[0.2, 0.3, 0.55], datasets_dir=datasets)
    write_trial(out, "B", 0, "finished", [0.2, 0.35], lr, datasets_dir=datasets)
    write_trial(out, "B", 1, "failed", [0.9], lr, datasets_dir=datasets,
                error="round 2: training diverged in the E-step")
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_report_tables_and_plots(sweep, capsys, drawn):
    assert run_tool("report", [str(sweep)]) == 0
    printed = capsys.readouterr().out

    results = read_csv(sweep / "results.csv")
    assert len(results) == 4
    a0 = results[0]
    assert (a0["dataset"], a0["seed"], a0["CSEM_lr"], a0["status"]) == ("A", "0", "0.001", "finished")
    assert (a0["best_round"], a0["best_prec_at_5"], a0["map_at_5"]) == ("2", "0.6", "0.4")  # earliest of the ties
    assert (a0["rounds_done"], a0["seconds"], a0["trial"]) == ("4", "6.0", "seed0_CSEM_lr=0.001")
    assert results[3]["status"] == "failed" and "diverged" in results[3]["error"]

    summary = read_csv(sweep / "summary.csv")
    assert [(r["dataset"], r["CSEM_lr"], r["trials"], r["finished"], r["failed"]) for r in summary] == \
        [("A", "0.001", "2", "2", "0"), ("B", "0.001", "2", "1", "1")]
    a, b = summary
    assert float(a["best_prec_at_5_mean"]) == pytest.approx(0.65)
    assert float(a["best_prec_at_5_std"]) == pytest.approx(np.sqrt(2 * 0.05 ** 2))  # sample std of 0.6, 0.7
    assert (float(a["best_prec_at_5_min"]), float(a["best_prec_at_5_max"])) == (0.6, 0.7)
    assert float(a["map_at_5_mean"]) == pytest.approx((0.4 + 0.55) / 2)
    # the failed trial's 0.9 is not averaged: B has one finished seed, so no std
    assert float(b["best_prec_at_5_mean"]) == 0.35 and b["best_prec_at_5_std"] == ""

    # baselines: zscrgan.baselines with the finished trials' seeds
    ds = load_dataset(str(sweep.parent / "datasets" / "A"))
    ridge = [zb.compare(ds, 5, seed)[1][0].prec for seed in (0, 1)]
    assert float(a["ridge_prec_at_5_mean"]) == pytest.approx(np.mean(ridge))
    assert float(a["ridge_prec_at_5_std"]) == pytest.approx(np.std(ridge, ddof=1))
    assert float(a["chance_prec_at_5"]) == pytest.approx(1 / 3)  # 3 unseen classes of 4 images each
    assert b["ridge_prec_at_5_std"] == "" and b["cca_prec_at_5_mean"] != ""

    md = (sweep / "summary.md").read_text()
    row_a = next(line for line in md.splitlines() if line.startswith("| A "))
    assert "0.6500 ± 0.0707 (0.6000–0.7000)" in row_a and "CSEM_lr=0.001" in row_a
    assert "| best test Prec@5 (all rounds)" in md and "ddof = 1" in md
    assert "`B/seed1_CSEM_lr=0.001`: failed after 1 rounds: round 2: training diverged" in md
    assert row_a in printed and "summary.md" in printed

    plots = sorted(os.listdir(sweep / "plots"))
    assert plots == ["A_CSEM_lr=0.001.png", "B_CSEM_lr=0.001.png", "summary.png"]
    for name in plots:
        assert (sweep / "plots" / name).read_bytes()[:8] == PNG
        assert f"(plots/{name})" in md
        shown = drawn[str(sweep / "plots" / name)]
        assert shown["overlaps"] == [] and "chance" in " ".join(shown["texts"])  # legends beside the axes
    for name in plots[:2]:
        assert all(float(x).is_integer() for x in drawn[str(sweep / "plots" / name)]["xticks"][0])  # whole rounds


def test_select_val_settings_and_pending_trials(tmp_path, drawn):
    out = tmp_path / "sweep"
    for seed, lr, precs, val in ((0, 0.001, [0.3, 0.5, 0.4], [0.6, 0.5, 0.7]),
                                 (1, 0.001, [0.2, 0.6, 0.1], [0.8, 0.8, 0.1]),
                                 (0, 0.01, [0.5], [0.5])):
        write_trial(out, "A", seed, "finished", precs, {"CSEM_lr": lr}, val=val, select="val")
    pending = out / "logs" / "A_logs" / "seed1_CSEM_lr=0.01"
    pending.mkdir()
    (pending / "status.yml").write_text(yaml.safe_dump({"dataset": "A", "seed": 1, "grid": {"CSEM_lr": 0.01},
                                                        "trial": pending.name, "status": "pending"}))
    table = zr.write_report(str(out), baselines=False)

    results = read_csv(out / "results.csv")
    assert [(r["seed"], r["CSEM_lr"], r["status"]) for r in results] == \
        [("0", "0.001", "finished"), ("1", "0.001", "finished"), ("0", "0.01", "finished"), ("1", "0.01", "pending")]
    r0, r1 = results[:2]
    assert (r0["best_val_round"], r0["val_prec_at_5"], r0["test_prec_at_5_at_best_val"]) == ("3", "0.7", "0.4")
    assert (r0["best_round"], r0["best_prec_at_5"], r0["map_at_5"]) == ("2", "0.5", "0.2")  # mAP at the val round
    assert r1["best_val_round"] == "1" and r1["test_prec_at_5_at_best_val"] == "0.2"  # earliest of the val ties
    assert results[3]["best_prec_at_5"] == ""

    summary = read_csv(out / "summary.csv")
    assert [(r["CSEM_lr"], r["trials"], r["finished"]) for r in summary] == [("0.001", "2", "2"), ("0.01", "2", "1")]
    assert float(summary[0]["test_prec_at_5_at_best_val_mean"]) == pytest.approx(0.3)
    assert float(summary[0]["best_prec_at_5_mean"]) == pytest.approx(0.55)
    assert "ridge_prec_at_5_mean" not in summary[0]
    assert "test Prec@5 at best val round" in table and "best test Prec@5 (all rounds)" in table
    assert sorted(os.listdir(out / "plots")) == ["A_CSEM_lr=0.001.png", "A_CSEM_lr=0.01.png", "summary.png"]
    assert all(shown["overlaps"] == [] for shown in drawn.values()) and len(drawn) == 3
    one_round = drawn[str(out / "plots" / "A_CSEM_lr=0.01.png")]["xticks"][0]
    assert one_round == [1.0]  # a setting with one round: one whole tick


def test_single_run_folder(tmp_path, capsys, drawn):
    datasets = tmp_path / "datasets"
    make_dataset(str(datasets / "A"))
    folder = write_trial(tmp_path, "A", 0, "finished", [0.3, 0.6, 0.5], maps=[0.1, 0.45, 0.3], datasets_dir=datasets)
    (folder / "status.yml").unlink()
    assert run_tool("report", [str(folder)]) == 0
    out = capsys.readouterr().out
    assert "rounds    3" in out and "best round: 2 (prec_at_5 = 0.6000, map_at_5 = 0.4500)" in out
    assert (folder / "plots" / "history.png").read_bytes()[:8] == PNG
    assert sorted(os.listdir(folder)) == ["config.yml", "history.csv", "plots"]  # nothing else written
    shown = drawn[str(folder / "plots" / "history.png")]
    assert shown["overlaps"] == [] and "chance Prec@5 0.333" in shown["texts"]  # 3 unseen classes, 4 images each
    assert all(float(x).is_integer() for ticks in shown["xticks"] for x in ticks)
    # a run whose dataset is gone: the same plot without a chance line, no error
    moved = write_trial(tmp_path / "moved", "A", 0, "finished", [0.3, 0.6], datasets_dir=tmp_path / "gone")
    assert run_tool("report", [str(moved)]) == 0
    assert not any("chance" in t for t in drawn[str(moved / "plots" / "history.png")]["texts"])


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "holds no sweep trials"),
    (lambda d: (d / "logs" / "A_logs" / "seed0").mkdir(parents=True)
     or (d / "logs" / "A_logs" / "seed0" / "status.yml").write_text("[1, 2"), "status.yml: not valid YAML at line 1, column 6"),
    (lambda d: (d / "logs" / "A_logs" / "seed0").mkdir(parents=True)
     or (d / "logs" / "A_logs" / "seed0" / "status.yml").write_text("dataset: A\nseed: 0\nstatus: done\n"),
     "is not a trial status"),
    (lambda d: (d / "history.csv").write_text("epoch,loss\n1,2\n"), "is not a history CSV"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, make, message):
    folder = tmp_path / "dir"
    folder.mkdir()
    make(folder)
    before = sorted(p.name for p in folder.rglob("*"))
    assert run_tool("report", [str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written
    assert run_tool("report", [str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "acc0.5.pkl").write_bytes(b"")
    assert run_tool("report", [str(tmp_path / "acc0.5.pkl")]) == 2
    assert f"is a retrieval dump: read it with `zscrgan inspect {tmp_path / 'acc0.5.pkl'}`" in capsys.readouterr().err
    assert run_tool("report", [str(tmp_path)]) == 2  # a results folder: its dumps are read by inspect
    assert f"it is a results folder; read its dumps with `zscrgan inspect {tmp_path / 'acc0.5.pkl'}`" \
        in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_run_reported_inspected_and_beside_the_baselines(tiny_run):
    """report on a real run's logs folder, then inspect and baselines of the same run."""
    base, _ = tiny_run
    folder = base / "logs" / "TINY_logs"
    proc = subprocess.run([sys.executable, "-m", "zscrgan", "report", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "rounds    2" in proc.stdout and "best round: " in proc.stdout
    assert (folder / "plots" / "history.png").read_bytes()[:8] == PNG

    env = {**os.environ, "PYTHONPATH": ROOT}
    common = ["--logs_dir", "logs", "--results_dir", "res"]  # the run's datasets_dir from its config.yml
    inspect = subprocess.run([sys.executable, "-m", "zscrgan", "inspect", "--dataset", "TINY", *common],
                             cwd=base, env=env, capture_output=True, text=True, timeout=300)
    assert inspect.returncode == 0, inspect.stderr
    assert f"dump      {os.path.join('res', 'TINY_res', 'acc')}" in inspect.stdout and "mAP@5" in inspect.stdout
    baselines = subprocess.run([sys.executable, "-m", "zscrgan", "baselines", "--dataset", "TINY", *common],
                               cwd=base, env=env, capture_output=True, text=True, timeout=300)
    assert baselines.returncode == 0, baselines.stderr
    zscrgan_row = next(line for line in baselines.stdout.splitlines() if line.startswith("ZSCRGAN"))
    assert "(best dump)" in zscrgan_row and zscrgan_row.split()[-1].startswith("acc")


def test_a_missing_dataset_leaves_the_baselines_blank(tmp_path):
    write_trial(tmp_path, "A", 0, "finished", [0.3, 0.6], datasets_dir=tmp_path / "moved")
    table = zr.write_report(str(tmp_path))
    summary = read_csv(tmp_path / "summary.csv")[0]
    assert summary["best_prec_at_5_mean"] == "0.6" and summary["ridge_prec_at_5_mean"] == ""
    assert "moved" in summary["baselines_note"] and "moved" in (tmp_path / "summary.md").read_text()
    assert [c.strip() for c in table.splitlines()[2].split("|")[1:-1]][-3:] == ["-", "-", "-"]
