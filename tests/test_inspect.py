"""The inspector: dumps (hand-built, with known Prec@K and mAP@K) and history files."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_tool
from zscrgan.tools import inspect as zi
from zscrgan.data.dataset import save_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Gallery: class 1 has 2 images, class 2 has 3; K = 4. Per query (rel, AP@4 = sum P@i rel_i / min(4, R)):
#   1: [1 2 1 2] rel 1010, AP = (1 + 2/3) / 2 = 5/6
#   1: [2 2 2 1] rel 0001, AP = (1/4) / 2   = 1/8
#   2: [2 2 2 1] rel 1110, AP = 3 / 3       = 1
# Prec@4: class 1 = 3 hits / (4 x 2) = 3/8, class 2 = 3/4, macro = 9/16 = 0.5625.
RECORDS = [{1: [1, 2, 1, 2]}, {1: [2, 2, 2, 1]}, {2: [2, 2, 2, 1]}]
PREC = 0.5625
MAP = (5 / 6 + 1 / 8 + 1) / 3


def write_pickle(path, obj, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


def run(argv, capsys):
    code = run_tool("inspect", [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def dataset_dir(tmp_path):
    """datasets/TINY whose unseen split matches RECORDS: texts 1, 1, 2; images 2 of class 1, 3 of class 2."""
    rng = np.random.default_rng(0)
    vec = lambda n: rng.random((n, 3))  # noqa: E731
    folder = tmp_path / "datasets" / "TINY"
    save_dataset(str(folder), {1: vec(2), 2: vec(1), 5: vec(2), 6: vec(2)},
                 {1: vec(2), 2: vec(3), 5: vec(2), 6: vec(2)}, train_ids=[5, 6], test_ids=[1, 2])
    (folder / "classes.txt").write_text("1, Black footed Albatross\n2\tLaysan Albatross\n")
    return tmp_path / "datasets"


def test_hand_built_dump_has_known_scores(tmp_path, dataset_dir, capsys):
    path = write_pickle(tmp_path / "acc0.5625.pkl", RECORDS)
    code, out, err = run([path, "--json", "--dataset", "TINY", "--datasets_dir", dataset_dir], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert (r["queries"], r["classes"], r["k"]) == (3, 2, 4)
    assert r["prec_at_k"] == PREC and r["score_matches_name"] is True
    assert r["map_at_k"] == pytest.approx(MAP, rel=1e-12)
    assert [(c["class"], c["queries"], c["prec_at_k"]) for c in r["per_class"]] == [(1, 2, 3 / 8), (2, 1, 3 / 4)]
    assert r["per_class"][0]["ap_at_k"] == pytest.approx((5 / 6 + 1 / 8) / 2)
    assert r["per_class"][0]["name"] == "Black footed Albatross"
    assert [(c["query_class"], c["retrieved_class"], c["count"], c["share"]) for c in r["confusions"]] == \
        [(1, 2, 5, 5 / 8), (2, 1, 1, 1 / 4)]
    assert r["confusions"][1]["retrieved_name"] == "Black footed Albatross"


def test_text_report(tmp_path, dataset_dir, capsys):
    path = write_pickle(tmp_path / "acc0.5625.pkl", RECORDS)
    code, out, _ = run([path, "--dataset", "TINY", "--datasets_dir", dataset_dir], capsys)
    assert code == 0
    assert "Prec@4   0.5625 (equals the 0.5625 in the file name)" in out
    assert "WARNING" not in out
    lines = out.splitlines()
    table = lines[lines.index("per class, worst first") + 2:]
    assert table[0].split()[:2] == ["1", "(Black"] and table[1].split()[:2] == ["2", "(Laysan"]
    assert "1 (Black footed Albatross) -> 2 (Laysan Albatross)" in out and "0.6250" in out


def test_score_differing_from_the_name_is_warned(tmp_path, capsys):
    path = write_pickle(tmp_path / "acc0.5.pkl", RECORDS)
    code, out, _ = run([path], capsys)
    assert code == 0
    assert "WARNING: recomputed 0.5625 differs from the 0.5 in the file name" in out
    code, out, err = run([path, "--json"], capsys)
    assert json.loads(out)["score_matches_name"] is False and "WARNING" in err


def test_python2_names_are_rounded_to_12_digits():
    equal, note = zi.score_check(0.1234567890123456, "0.123456789012")
    assert equal is False and "12 significant digits" in note
    assert zi.score_check(0.25, "0.25") == (True, "equals the 0.25 in the file name")
    assert zi.score_check(0.25, None)[0] is None
    assert zi.name_score("x/acc0.521.pkl") == "0.521" and zi.name_score("accx.pkl") is None


def test_reference_style_numpy_ids_load_as_ints(tmp_path):
    """The reference pickled numpy int64 labels with cPickle's protocol 0."""
    recs = [{np.int64(q): [np.int64(x) for x in row]} for r in RECORDS for q, row in r.items()]
    loaded = zi.load_dump(write_pickle(tmp_path / "acc0.5625.pkl", recs, protocol=0))
    assert loaded == RECORDS and all(type(next(iter(r))) is int for r in loaded)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content, message", [
    ([{1: [_Exploit()]}], "refused to load"),
    ({"not": "a list"}, "not a retrieval dump"),
    ([], "not a retrieval dump"),
    ([{1: [1, 2]}, {1: [1]}], "record 1 retrieves 1 images, expected 2"),
    ([{1: [1]}, {1: [1], 2: [2]}], "record 1 is not"),
    ([{1.5: [1]}], "record 0 is not"),
    ([{1: [True]}], "record 0 is not"),
])
def test_bad_dumps_are_one_line_errors(tmp_path, capsys, content, message):
    path = write_pickle(tmp_path / "acc0.1.pkl", content)
    code, out, err = run([path], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_missing_file_unknown_dataset_and_garbage(tmp_path, capsys):
    code, _, err = run([tmp_path / "acc0.3.pkl"], capsys)
    assert code == 2 and "no such file" in err
    path = write_pickle(tmp_path / "acc0.5625.pkl", RECORDS)
    code, _, err = run([path, "--dataset", "NOPE", "--datasets_dir", tmp_path], capsys)
    assert code == 2 and "dataset 'NOPE' not found" in err
    garbage = tmp_path / "acc0.2.pkl"
    garbage.write_bytes(b"\x80\x02garbage")
    code, _, err = run([garbage], capsys)
    assert code == 2 and "not a readable pickle" in err


def test_dataset_without_classes_txt_or_other_split(tmp_path, dataset_dir, capsys):
    (dataset_dir / "TINY" / "classes.txt").unlink()
    path = write_pickle(tmp_path / "acc1.0.pkl", [{1: [1, 1]}, {1: [1, 1]}, {3: [3, 1]}])
    code, out, _ = run([path, "--dataset", "TINY", "--datasets_dir", dataset_dir], capsys)
    assert code == 0
    assert "has no classes.txt" in out and "no mAP" in out and "mAP@" not in out.split("note:")[0]


def test_class_names_file_formats(tmp_path):
    (tmp_path / "classes.txt").write_text("# id name\n1, a b\n\n2\tc\n3 d e\n-1,neg\n")
    assert zi.read_class_names(str(tmp_path)) == {1: "a b", 2: "c", 3: "d e", -1: "neg"}
    (tmp_path / "classes.txt").write_text("one, a\n")
    with pytest.raises(zi.InspectError, match="line 1"):
        zi.read_class_names(str(tmp_path))


def test_perfect_dump_has_no_confusions(tmp_path, capsys):
    path = write_pickle(tmp_path / "acc1.0.pkl", [{4: [4, 4]}, {5: [5, 5]}])
    code, out, _ = run([path], capsys)
    assert code == 0 and "none: every retrieved image is of the query's class" in out


# ----------------------------------------------------------------------------- history

HEADER = "round,prec_at_50,map_at_50,d_loss,g_loss,kl_loss,csem_loss,e_step_s,m_step_s,eval_s,prec_at_10,extra\n"


def history(tmp_path, precs, tail=""):
    rows = "".join(f"{i},{p},{p / 2},-0.5,1.25,0.01,0.69,2.5,0.4,0.1,{p + 0.1},x\n" for i, p in enumerate(precs, 1))
    path = tmp_path / "history.csv"
    path.write_text(HEADER + rows + tail)
    return path


def test_history_best_round_and_table(tmp_path, capsys):
    path = history(tmp_path, [0.3, 0.5, 0.4, 0.5, 0.45], tail="6,0.4")  # a line still being written
    code, out, _ = run(["--history", path], capsys)
    assert code == 0
    assert "best round: 2 (prec_at_50 = 0.5000, map_at_50 = 0.2500)" in out  # earliest of the ties
    assert "rounds    6" in out
    marked = [line for line in out.splitlines() if line.startswith("* ")]
    assert len(marked) == 1 and marked[0].split()[1:3] == ["2", "0.5000"]
    assert "prec_at_10" in out and "extra" in out


def test_history_json_and_subsampling(tmp_path, capsys):
    precs = [0.1 + 0.001 * i for i in range(100)]
    precs[37] = 0.9
    path = history(tmp_path, precs, tail="101,nan,,,,,,,,,,\n")
    code, out, _ = run(["--history", path, "--json"], capsys)
    r = json.loads(out)
    assert code == 0 and r["rounds"] == 101 and r["best"]["round"] == 38 and r["metric"] == "prec_at_50"
    assert r["rows"][-1]["prec_at_50"] is None and r["rows"][-1]["extra"] is None
    code, out, _ = run(["--history", path, "--rows", "5"], capsys)
    cells = [line[2:].split() for line in out.splitlines()]  # table rows start with "  " or "* "
    shown = [c[0] for c in cells if c and c[0].isdigit()]
    assert shown == ["1", "26", "38", "51", "76", "101"]
    assert "(6 of 101 rounds shown; --rows 0 shows all)" in out


def test_history_header_only_and_bad_files(tmp_path, capsys):
    path = tmp_path / "history.csv"
    path.write_text(HEADER)
    code, out, _ = run(["--history", path], capsys)
    assert code == 0 and "no rounds recorded yet" in out
    path.write_text("epoch,loss\n1,2\n")
    code, _, err = run(["--history", path], capsys)
    assert code == 2 and "needs a 'round' and a 'prec_at_<K>' column" in err
    code, _, err = run(["--history", tmp_path / "missing.csv"], capsys)
    assert code == 2 and "no such file" in err


def test_a_run_folder_is_a_history_and_a_k_without_its_column_falls_back_whole(tmp_path, capsys):
    """--history takes a run's logs folder; a run whose K (config.yml: 50) has no column is read on
    the history's own Prec@K column, for the best round too."""
    (tmp_path / "config.yml").write_text("dataset: X\ntop_k: 50\n")
    (tmp_path / "history.csv").write_text("round,prec_at_10\n1,0.2\n2,0.4\n")
    code, out, err = run(["--history", tmp_path], capsys)
    assert code == 0, err
    assert "best round: 2 (prec_at_10 = 0.4000)" in out
    code, _, err = run(["--history", tmp_path / "empty"], capsys)
    assert code == 2 and "no such file" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(["--history", tmp_path / "empty"], capsys)
    assert code == 2 and "is a folder without a history.csv" in err


def test_a_folder_given_as_a_dump_is_named_as_a_folder(tmp_path, capsys):
    write_pickle(tmp_path / "acc0.5625.pkl", RECORDS)
    code, _, err = run([tmp_path], capsys)
    assert code == 2 and f"{tmp_path}: a folder, not a dump: give one of the dumps it holds (acc0.5625.pkl)" in err
    logs = tmp_path / "TINY_logs"  # a run's logs folder: its rounds are read with --history
    logs.mkdir()
    (logs / "history.csv").write_text("round,prec_at_4\n1,0.5\n")
    code, _, err = run([logs], capsys)
    assert code == 2 and f"a run's logs folder, not a dump: read its rounds with `zscrgan inspect --history {logs}`" in err


def test_the_runs_own_datasets_dir_and_k_are_used(tmp_path, dataset_dir, capsys):
    """inspect --dataset (no --datasets_dir) finds the dataset where the run's config.yml says."""
    logs, res = tmp_path / "logs" / "TINY_logs", tmp_path / "res" / "TINY_res"
    logs.mkdir(parents=True)
    res.mkdir(parents=True)
    (logs / "config.yml").write_text(f"dataset: TINY\ntop_k: 4\ndatasets_dir: {dataset_dir}\n")
    (logs / "history.csv").write_text(f"round,prec_at_4,map_at_4\n1,{PREC},0.5\n")
    write_pickle(res / f"acc{PREC}.pkl", RECORDS)
    code, out, err = run(["--dataset", "TINY", "--logs_dir", tmp_path / "logs", "--results_dir", tmp_path / "res"],
                         capsys)
    assert code == 0, err
    assert f"mAP@4    {MAP:.4f}" in out and "Black footed Albatross" in out


def test_one_input_is_required(capsys):
    assert run_tool("inspect", []) == 2
    assert capsys.readouterr().err.startswith("error: give a dump file, --history CSV, or --dataset NAME")


def test_command_line_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zscrgan", "inspect", str(tmp_path / "acc0.1.pkl")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: ")  # no TensorFlow chatter


# ----------------------------------------------------------------------------- a run by name


@pytest.fixture
def run_folders(tmp_path):
    """Hand-built run folders: a named run r1 (two dumps and a history) and an unnamed run (one dump)."""
    res, logs = tmp_path / "res" / "TINY_res", tmp_path / "logs" / "TINY_logs" / "r1"
    (res / "r1").mkdir(parents=True)
    logs.mkdir(parents=True)
    write_pickle(res / "r1" / "acc0.5625.pkl", RECORDS)
    write_pickle(res / "r1" / "acc0.375.pkl", [{1: [1, 2, 2, 2]}, {1: [2, 2, 2, 1]}, {2: [2, 1, 1, 1]}])
    write_pickle(res / "acc1.0.pkl", [{4: [4, 4]}, {5: [5, 5]}])
    history(logs, [0.3, 0.5625, 0.4])
    return tmp_path


def test_run_name_selects_the_runs_best_dump(run_folders, dataset_dir, capsys):
    code, out, err = run(["--dataset", "TINY", "--run_name", "r1", "--results_dir", run_folders / "res",
                          "--datasets_dir", dataset_dir], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"dump      {run_folders / 'res' / 'TINY_res' / 'r1' / 'acc0.5625.pkl'}"
    assert "Prec@4   0.5625 (equals" in out and f"mAP@4    {MAP:.4f}" in out
    # without --run_name: the unnamed run's folder, whose dump is not of TINY's gallery
    code, out, _ = run(["--dataset", "TINY", "--results_dir", run_folders / "res", "--datasets_dir", dataset_dir],
                       capsys)
    assert code == 0 and "acc1.0.pkl" in out.splitlines()[0] and "no mAP" in out


def test_run_name_selects_the_runs_history(run_folders, capsys):
    code, out, err = run(["--history", "--dataset", "TINY", "--run_name", "r1", "--logs_dir", run_folders / "logs"],
                         capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"history   {run_folders / 'logs' / 'TINY_logs' / 'r1' / 'history.csv'}"
    assert "best round: 2 (prec_at_50 = 0.5625" in out


def test_run_name_bad_input(run_folders, capsys):
    code, _, err = run(["--dataset", "TINY", "--run_name", "r2", "--results_dir", run_folders / "res"], capsys)
    assert code == 2 and err.startswith("error: no dump acc<score>.pkl in ") and "r2" in err
    code, _, err = run(["--history", "--dataset", "TINY", "--run_name", "r2", "--logs_dir", run_folders / "logs"],
                       capsys)
    assert code == 2 and "history.csv: no such file" in err
    for argv in (["acc0.1.pkl", "--run_name", "r1"], ["--history", "h.csv", "--logs_dir", "x"],
                 ["acc0.1.pkl", "--history"], ["--history"], ["--run_name", "r1"]):
        assert run_tool("inspect", argv) == 2
        assert len(capsys.readouterr().err.splitlines()) == 1


VAL_HEADER = "round,prec_at_50,map_at_50,val_prec_at_50,val_map_at_50,d_loss\n"


def val_history(tmp_path, pairs, select):
    """A history with validation columns; pairs: (test Prec@50, val Prec@50) per round."""
    rows = "".join(f"{i},{p},{p / 2},{v},{v / 2},-0.5\n" for i, (p, v) in enumerate(pairs, 1))
    path = tmp_path / "history.csv"
    path.write_text(VAL_HEADER + rows)
    if select:
        (tmp_path / "config.yml").write_text(f"dataset: X\nval_classes: [1, 2]\nselect: {select}\n")
    return path


PAIRS = [(0.3, 0.5), (0.6, 0.55), (0.4, 0.7), (0.7, 0.6), (0.5, 0.7)]


def test_history_with_validation_marks_the_selected_round_and_gives_both_figures(tmp_path, capsys):
    code, out, _ = run(["--history", val_history(tmp_path, PAIRS, "val")], capsys)
    assert code == 0
    marks = {line[0]: line.split()[1] for line in out.splitlines()
             if line[:2] in ("* ", "+ ") and line.split()[1].isdigit()}
    assert marks == {"*": "3", "+": "4"}  # the earliest of the tied validation rounds is selected
    assert "test Prec@50 at the best validation round: 0.4000 (round 3, val_prec_at_50 = 0.7000)" in out
    assert "best test Prec@50 over all rounds (the reference's protocol): 0.7000 (round 4)" in out
    code, out, _ = run(["--history", tmp_path / "history.csv", "--json"], capsys)
    r = json.loads(out)
    assert r["selected"]["round"] == 3 and r["val_best"]["round"] == 3 and r["best"]["round"] == 4


def test_history_of_a_run_that_selected_on_test_keeps_the_test_round(tmp_path, capsys):
    code, out, _ = run(["--history", val_history(tmp_path, PAIRS, "test")], capsys)
    assert code == 0
    marks = {line[0]: line.split()[1] for line in out.splitlines()
             if line[:2] in ("* ", "+ ") and line.split()[1].isdigit()}
    assert marks == {"*": "4", "+": "3"}
    assert "selected round: 4 (select: test" in out and "best validation round: 0.4" in out


def test_a_run_that_selected_on_validation_classes_opens_its_selected_rounds_dump(dataset_dir, tmp_path, capsys):
    """Its dumps are named by test scores, so the highest name is not the selected round's."""
    res, logs = tmp_path / "res" / "TINY_res" / "v", tmp_path / "logs" / "TINY_logs" / "v"
    res.mkdir(parents=True)
    logs.mkdir(parents=True)
    val_history(logs, [(0.375, 0.5), (0.5625, 0.7), (0.75, 0.6)], "val")
    (logs / "config.yml").write_text("dataset: TINY\ntop_k: 50\nval_classes: [5, 6]\nselect: val\n")
    write_pickle(res / "acc0.5625.pkl", RECORDS)
    write_pickle(res / "acc0.75.pkl", [{1: [1, 1, 1, 1]}, {1: [1, 1, 1, 1]}, {2: [2, 2, 2, 2]}])
    args = ["--dataset", "TINY", "--run_name", "v", "--results_dir", tmp_path / "res", "--logs_dir", tmp_path / "logs",
            "--datasets_dir", dataset_dir]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"dump      {res / 'acc0.5625.pkl'}"
    (logs / "config.yml").write_text("dataset: TINY\ntop_k: 50\n")  # selected on test: the highest
    code, out, _ = run(args, capsys)
    assert code == 0 and out.splitlines()[0] == f"dump      {res / 'acc0.75.pkl'}"
