"""The results layer (zscrgan/results/): one history reader, one selection rule, and every tool
naming the same round of the same history."""
import os
import pickle

import pytest
import yaml

from conftest import make_dataset, run_tool
from zscrgan.errors import ResultsError
from zscrgan.files import read_yaml
from zscrgan.results.history import best_row, read_history
from zscrgan.results.run import Run
from zscrgan.results.trials import STATUSES, Trial, setting_label, trial_label
from zscrgan.sweeps import report
from zscrgan.tools import inspect as inspector

# Ties (rounds 2 and 4 on validation, 3 and 5 on test) and a blank: the earliest of ties wins.
HISTORY = """round,prec_at_5,map_at_5,val_prec_at_5,val_map_at_5,d_loss
1,0.30,0.20,0.40,0.30,-0.1
2,0.35,0.25,0.60,0.50,-0.1
3,0.50,0.40,0.55,0.45,-0.1
4,0.45,0.35,0.60,0.50,-0.1
5,0.50,0.30,,,-0.1
"""


def write_run(tmp_path, select):
    logs, res = tmp_path / "logs" / "TINY_logs", tmp_path / "res" / "TINY_res"
    logs.mkdir(parents=True)
    res.mkdir(parents=True)
    (logs / "history.csv").write_text(HISTORY)
    config = {"dataset": "TINY", "logs_dir": str(tmp_path / "logs"), "results_dir": str(tmp_path / "res"),
              "top_k": 5, "val_classes": [0, 1], **({"select": select} if select != "test" else {})}
    (logs / "config.yml").write_text(yaml.safe_dump(config))
    for score in ("0.3", "0.35", "0.5"):  # the dumps a run writes at each new best test score
        with open(res / f"acc{score}.pkl", "wb") as f:
            pickle.dump([{2: [2, 3]}], f)
    return logs, res


@pytest.mark.parametrize("select,expected", [("val", 2), ("test", 3)])
def test_every_tool_names_the_same_round(tmp_path, select, expected, capsys):
    logs, res = write_run(tmp_path, select)
    run = Run.find("TINY", logs_dir=str(tmp_path / "logs"), results_dir=str(tmp_path / "res"))
    assert run.select == select and run.selected()["round"] == expected
    assert Run.at(str(logs)).selected()["round"] == expected
    history = inspector.inspect_history(str(logs / "history.csv"))
    assert history["selected"]["round"] == expected and history["best"]["round"] == 3
    scores = report.score_columns(run, run.history()[1])
    assert scores["best_round"] == 3
    assert scores.get("best_val_round", scores["best_round"]) == expected
    expected_dump = str(res / f"acc{run.selected()['prec_at_5']}.pkl")
    assert run.selected_dump() == expected_dump  # what inspect --dataset and baselines open
    make_dataset(str(tmp_path / "datasets" / "TINY"))
    assert run_tool("inspect", ["--dataset", "TINY", "--logs_dir", tmp_path / "logs", "--results_dir",
                                tmp_path / "res", "--datasets_dir", tmp_path / "datasets", "--json"]) == 0
    assert '"file": "' + expected_dump in capsys.readouterr().out
    assert run_tool("report", [logs]) == 0
    out = capsys.readouterr().out
    assert "best round: 3" in out and (select == "test" or f"best validation round: {expected}" in out)


def test_a_run_without_config_uses_the_documented_default_select(tmp_path):
    logs, _ = write_run(tmp_path, "val")
    os.remove(logs / "config.yml")
    run = Run.at(str(logs))
    assert run.select == "test" and run.top_k == 5 and run.selected()["round"] == 3
    assert inspector.inspect_history(str(logs / "history.csv"))["selected"]["round"] == 3


def test_read_history_types_rows_and_refuses_other_files(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(HISTORY + "6")  # a row still being written: no readable round
    columns, rows = read_history(str(path))
    assert columns[:3] == ["round", "prec_at_5", "map_at_5"] and len(rows) == 6
    assert rows[0]["round"] == 1 and rows[0]["prec_at_5"] == 0.3 and rows[4]["val_prec_at_5"] is None
    assert read_history(str(tmp_path / "none.csv")) == ([], [])
    with pytest.raises(ResultsError, match="no such file"):
        read_history(str(tmp_path / "none.csv"), missing_ok=False)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="needs a 'round'"):
        read_history(str(path))


def test_best_row_skips_blanks_and_non_finite_values():
    rows = [{"round": 1, "v": None}, {"round": 2, "v": float("nan")}, {"round": 3, "v": 0.7},
            {"round": 4, "v": 0.7}, {"round": 5}]
    assert best_row(rows, "v")["round"] == 3
    assert best_row(rows[:2], "v") is None


def test_a_trial_label_is_one_format():
    grid = {"eval_ks": [5, 10], "jit_compile": True}
    assert trial_label(3, grid) == "seed3_eval_ks=5+10_jit_compile=True"
    assert setting_label(grid) == "eval_ks=5+10_jit_compile=True" and trial_label(0, {}) == "seed0"


def test_a_trials_status_changes_in_one_place_and_is_checked_when_read(tmp_path):
    folder = str(tmp_path)
    trial = Trial.create(folder, {"dataset": "D", "seed": 3, "run_name": "seed3_x=1", "x": 1}, ["x"])
    assert Trial.read(folder).status == {"dataset": "D", "seed": 3, "grid": {"x": 1}, "trial": "seed3_x=1",
                                         "status": "pending", "error": None, "rounds_done": 0, "seconds": 0.0,
                                         "attempts": 0, "node": None}
    trial.start_attempt("host-a")
    trial.fail("boom")
    trial.requeue()
    trial.start_attempt("host-b")
    assert {k: Trial.read(folder)[k] for k in ("status", "error", "attempts", "node")} == {
        "status": "running", "error": None, "attempts": 2, "node": "host-b"}
    trial.end_by_scheduler(2, epochs=5)
    assert (Trial.read(folder)["status"], Trial.read(folder)["rounds_done"]) == ("stopped", 2)
    trial.end_by_scheduler(5, epochs=5)
    assert Trial.read(folder)["status"] == "finished"
    (tmp_path / "status.yml").write_text("dataset: D\nseed: 1\nstatus: done\n")
    with pytest.raises(ResultsError, match=f"status 'done' is none of {', '.join(STATUSES)}"):
        Trial.read(folder)


def test_a_yaml_error_names_line_and_column(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text("a: 1\nb: [2,\n")
    with pytest.raises(ResultsError, match=r"line 3, column 1"):
        read_yaml(str(path), "run config", ResultsError)


def test_a_runs_flags_find_it_again(tmp_path):
    """Run.flags: what a message tells a user to give a tool (export) for a run's logs folder."""
    for name, logs in ((None, tmp_path / "L" / "TINY_logs"), ("r1", tmp_path / "L" / "TINY_logs" / "r1")):
        logs.mkdir(parents=True)
        (logs / "config.yml").write_text(yaml.safe_dump({"dataset": "TINY", "run_name": name}))
        flags = Run.at(str(logs) + os.sep).flags()
        assert flags == f"--dataset TINY{' --run_name r1' if name else ''} --logs_dir {tmp_path / 'L'}"
        found = Run.find("TINY", name, str(tmp_path / "L"))
        assert os.path.normpath(found.logs) == str(logs)
