"""Kept kernels (zscrgan/run/kept_kernels.py): a run on another run's traced model and evaluators is the
run it would have been on its own, and they are taken only when the graphs are the same."""

import numpy as np
import pytest

from conftest import dump_bytes, history_rows, make_dataset, tiny_config
from zscrgan.run import kept_kernels as kernels, loop
from zscrgan.data.dataset import load_dataset
from zscrgan.results.run import Run


@pytest.fixture(autouse=True)
def nothing_kept():
    kernels.forget()
    yield
    kernels.forget()


def outputs(run):
    """History without timings, the dumps' bytes, and every tensor of the latest and best checkpoints."""
    import tensorflow as tf
    history, dumps = history_rows(run.logs), dump_bytes(run.results)
    tensors = {}
    for which in ("latest", "best"):
        reader = tf.train.load_checkpoint(run.checkpoint(which))
        tensors.update({(which, name): reader.get_tensor(name) for name in reader.get_variable_to_shape_map()})
    return history, dumps, tensors


def assert_same(a, b):
    assert a[0] == b[0] and a[1] == b[1] and a[1]
    assert sorted(a[2]) == sorted(b[2])
    for name, value in a[2].items():
        np.testing.assert_array_equal(value, b[2][name], err_msg=str(name))


@pytest.mark.slow
def test_runs_on_kept_kernels_equal_runs_on_their_own(tmp_path):
    """Seeds 0, 1, 0 in one process with the kernels kept, each against the same run without
    (seed 0's run without kept kernels is made once: the same run again is the same bits)."""
    make_dataset(str(tmp_path / "datasets" / "TINY"))

    def one(seed, i, reuse):
        cfg = tiny_config(seed=seed, epochs=3, jit_compile=True, run_name=f"{'kept' if reuse else 'own'}{i}",
                          datasets_dir=str(tmp_path / "datasets"), logs_dir=str(tmp_path / "logs"),
                          results_dir=str(tmp_path / "res"))
        startup = {}
        loop.run(cfg, progress=False, reuse_kernels=reuse, startup=startup)
        return outputs(Run.of(cfg)), startup

    models, histories, alone = [], [], {}
    for i, seed in enumerate((0, 1, 0)):
        if seed not in alone:
            alone[seed] = one(seed, i, False)
        own, own_start = alone[seed]
        kept, kept_start = one(seed, i, True)
        assert_same(kept, own)
        assert not own_start["reused_kernels"] and own_start["trace_s"] > 0
        assert kept_start["reused_kernels"] == (i > 0)
        assert (kept_start["trace_s"] == 0) == (i > 0)
        models.append(kernels.kept()[0])
        histories.append(own[0])
    assert models[0] is models[1] is models[2]
    assert models[0].e_step.experimental_get_tracing_count() == models[0].m_step.experimental_get_tracing_count() == 1
    assert histories[0] != histories[1]  # seed 1 trained from other values: they were all set


def test_kernels_are_kept_only_for_the_same_graphs(tmp_path):
    data = load_dataset(make_dataset(str(tmp_path / "TINY")))
    other = load_dataset(make_dataset(str(tmp_path / "TINY2"), seed=1))  # same sizes, other numbers

    def build(dataset=data, **overrides):
        return loop.build(tiny_config(**overrides), dataset, reuse_kernels=True)

    first = build()[0]
    model, evaluator, val, _ = build(seed=1, epochs=9, run_name="x", logs_dir="elsewhere", patience=2)
    assert model is first and val is None
    fresh = loop.build(tiny_config(seed=1), data)[0]
    for a, b in zip(kernels.state(model), kernels.state(fresh)):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    assert evaluator.nets is model.nets and evaluator.rng is model.rng
    for overrides, dataset in [({"gf_dim": 16}, data), ({}, other), ({"CSEM_lr": 0.001}, data),
                               ({"val_classes": [0, 1]}, data)]:
        kept = kernels.kept()[0]
        assert build(dataset, **overrides)[0] is not kept, overrides
    model, evaluator, val, _ = build(seed=2, val_classes=[0, 1])  # the same held-out classes: kept
    kept_model, (kept_evaluator, kept_val) = kernels.kept()
    assert model is kept_model and evaluator is kept_evaluator and val is kept_val is not None
    assert build(seed=2, val_classes=[0, 2])[0] is not model  # other classes held out: other data
