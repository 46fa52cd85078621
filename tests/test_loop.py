"""The one training loop (zscrgan/run/loop.py) with scripted scores: which round it selects, where it
stops, what it writes. The E-step, M-step and evaluation are replaced by a script, so these
rules are tested for any score sequence, not for one training trajectory."""
import os
import pickle

import pytest

from conftest import tiny_config
from zscrgan.run import loop
from zscrgan.run import steps as steps_lib
from zscrgan.results.checkpoints import CheckpointSlot, round_of
from zscrgan.results.run import Run


def scripted(test, val=None):
    """A stand-in for loop.run_round that gives each member's round r its scripted Prec@5 (and val Prec@5)."""
    def one(r):
        metrics = {"prec_at_5": test[r - 1], "map_at_5": test[r - 1] / 2}
        if val is not None:
            metrics.update(val_prec_at_5=val[r - 1], val_map_at_5=val[r - 1] / 2)
        losses = {"d_loss": -0.1, "g_loss": 1.0, "kl_loss": 0.0, "csem_loss": 0.5}
        return metrics, losses, {"e_step_s": 0.0, "m_step_s": 0.0, "eval_s": 0.0}, [{r: [r, 0]}]

    def run_round(model, members, steps, startup=None):
        return {m: one(m.next_round()) for m in members}
    return run_round


def train(tmp_path, monkeypatch, test, val=None, **cfg):
    monkeypatch.setattr(loop, "run_round", scripted(test, val))
    cfg = tiny_config(**{"datasets_dir": str(tmp_path / "datasets"), "logs_dir": str(tmp_path / "logs"),
                         "results_dir": str(tmp_path / "res"), "epochs": len(test), **cfg})
    summary = loop.run(cfg, progress=False)
    return summary, Run.of(cfg)


def dumps(run):
    return sorted(f for f in os.listdir(run.results) if f.startswith("acc"))


def test_the_best_round_is_the_earliest_of_ties(tmp_path, monkeypatch, tiny_dataset):
    summary, run = train(tmp_path, monkeypatch, [0.2, 0.5, 0.5, 0.4, 0.1])
    assert summary == {"rounds": 5, "best": 0.5, "test_at_best": 0.5, "stopped_early": False}
    assert round_of(run.checkpoint("best")) == 2 and round_of(run.checkpoint("latest")) == 5
    assert run.selected()["round"] == 2
    assert dumps(run) == ["acc0.2.pkl", "acc0.5.pkl"]
    with open(run.selected_dump(), "rb") as f:
        assert pickle.load(f) == [{2: [2, 0]}]  # round 2's records, not round 3's


def test_patience_stops_exactly_patience_rounds_after_the_best(tmp_path, monkeypatch, tiny_dataset):
    summary, run = train(tmp_path, monkeypatch, [0.1, 0.3, 0.2, 0.3, 0.25, 0.9, 0.95], patience=3)
    assert summary["stopped_early"] and summary["rounds"] == 5 and summary["best"] == 0.3
    assert [row["round"] for row in run.history()[1]] == [1, 2, 3, 4, 5]
    # Resuming a run that stopped early does nothing: the count is in the best/ checkpoint's name.
    cfg = tiny_config(datasets_dir=str(tmp_path / "datasets"), logs_dir=str(tmp_path / "logs"),
                      results_dir=str(tmp_path / "res"), epochs=7, patience=3)
    assert loop.run(cfg, resume=True, progress=False) == summary


def test_select_val_picks_on_validation_and_dumps_the_test_retrieval(tmp_path, monkeypatch, tiny_dataset):
    test, val = [0.6, 0.2, 0.3, 0.9], [0.1, 0.4, 0.4, 0.2]
    summary, run = train(tmp_path, monkeypatch, test, val, val_classes=[0, 1], select="val")
    assert summary == {"rounds": 4, "best": 0.4, "test_at_best": 0.2, "stopped_early": False}
    assert round_of(run.checkpoint("best")) == 2 and run.selected()["round"] == 2
    assert run.best_test()["round"] == 4  # the reference's protocol would take round 4
    assert dumps(run) == ["acc0.2.pkl", "acc0.6.pkl"] and run.selected_dump().endswith("acc0.2.pkl")


def refuse_round_2(monkeypatch, where):
    """Make the system refuse a write of round 2: the history row (an OSError, as a full disk
    gives) or the latest checkpoint (TensorFlow's own error from SaveV2)."""
    import tensorflow as tf
    if where == "history":
        real = loop.History.append

        def append(self, row):
            if row["round"] == 2:
                raise OSError(28, "No space left on device", self.path)
            real(self, row)
        monkeypatch.setattr(loop.History, "append", append)
    else:
        real = CheckpointSlot.save

        def save(self, ckpt, number):
            if number == 2 and self.name == "latest":
                raise tf.errors.ResourceExhaustedError(None, None, "foo.data; No space left on device [Op:SaveV2]")
            return real(self, ckpt, number)
        monkeypatch.setattr(CheckpointSlot, "save", save)


@pytest.mark.parametrize("where,words", [("history", "history.csv: No space left on device"),
                                         ("checkpoint", "latest: foo.data; No space left on device")])
def test_a_refused_write_is_one_line_and_resume_ends_as_an_uninterrupted_run(tmp_path, monkeypatch, tiny_dataset,
                                                                            where, words):
    scores = [0.1, 0.3, 0.2]
    _, whole = train(tmp_path / "whole", monkeypatch, scores, datasets_dir=str(tmp_path / "datasets"))
    monkeypatch.setattr(loop, "run_round", scripted(scores))
    cfg = tiny_config(datasets_dir=str(tmp_path / "datasets"), logs_dir=str(tmp_path / "logs"),
                      results_dir=str(tmp_path / "res"), epochs=3)
    with monkeypatch.context() as m:
        refuse_round_2(m, where)
        with pytest.raises(loop.RunFault) as e:
            loop.run(cfg, progress=False)
    message = str(e.value)
    assert words in message and "the last whole checkpoint is round 1" in message and "--resume" in message
    assert len(message.splitlines()) == 1
    assert loop.run(cfg, resume=True, progress=False)["rounds"] == 3
    run = Run.of(cfg)
    assert run.history()[1] == whole.history()[1] and dumps(run) == dumps(whole)
    assert round_of(run.checkpoint("best")) == round_of(whole.checkpoint("best")) == 2


def test_the_first_round_traces_the_m_step_in_a_second_thread_with_the_same_results(tmp_path):
    import threading

    import numpy as np
    import tensorflow as tf

    from conftest import make_dataset
    from zscrgan.data.dataset import load_dataset
    from zscrgan.model.em import ZSCRGAN

    data = load_dataset(make_dataset(str(tmp_path / "D")))
    cfg = tiny_config()
    ahead, plain = (ZSCRGAN(cfg, data.text_dim, data.image_dim, data) for _ in range(2))
    tracers = []
    m_step = ahead._m_step
    ahead._m_step = lambda *a: (tracers.append(threading.current_thread()), m_step(*a))[1]
    ahead.new_steps()
    steps = tf.constant(2), tf.constant(2), tf.constant(2)
    for _ in range(2):
        out = steps_lib.e_step_tracing_m_step(ahead, *steps)
        ahead.m_step(steps[2])
        expected = plain.e_step(*steps[:2])
        plain.m_step(steps[2])
        assert {k: float(v) for k, v in out.items()} == {k: float(v) for k, v in expected.items()}
    assert len(tracers) == 1 and tracers[0] is not threading.main_thread()
    assert ahead.e_step.experimental_get_tracing_count() == ahead.m_step.experimental_get_tracing_count() == 1
    for a, b in zip(ahead.variables, plain.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_the_rounds_keep_the_cycle_collector_off_the_heap_they_started_with(tmp_path, monkeypatch, tiny_dataset):
    import gc
    frozen, script = [], scripted([0.2, 0.3])

    def run_round(*args, **kwargs):
        frozen.append(gc.get_freeze_count())
        return script(*args, **kwargs)

    cfg = tiny_config(datasets_dir=str(tmp_path / "datasets"), logs_dir=str(tmp_path / "logs"),
                      results_dir=str(tmp_path / "res"), epochs=2)
    monkeypatch.setattr(loop, "run_round", run_round)
    loop.run(cfg, progress=False)
    assert len(frozen) == 2 and min(frozen) > 0  # every round ran with the start-up heap frozen
    assert gc.get_freeze_count() == 0  # and gave it back afterwards


def test_the_console_gives_scores_with_4_decimals_and_the_files_every_digit(tmp_path, monkeypatch, tiny_dataset,
                                                                            capsys):
    summary, run = train(tmp_path, monkeypatch, [0.35179999999999995])
    said = capsys.readouterr()
    said = said.out + said.err
    assert "New best Prec@5 = 0.3518\n" in said and "Done: 1 round, best Prec@5 = 0.3518\n" in said
    assert dumps(run) == ["acc0.35179999999999995.pkl"] and run.history()[1][0]["prec_at_5"] == 0.35179999999999995
