"""The stacked model (zscrgan/model/stacked.py, docs/algorithm.md §11.5): several seeds as one
model whose every member steps bit for bit as the standalone model of its seed."""
import numpy as np
import pytest

from conftest import make_dataset, tiny_config
from zscrgan.data.dataset import load_dataset

DEMO_WIDTHS = {"embed_dim": 128, "z_dim": 32, "gf_dim": 256, "df_dim": 256, "batch_size": 32}


def models(tmp_path, seeds, data=None, **overrides):
    """(stacked model of `seeds`, its config, the dataset) on one tiny dataset."""
    from zscrgan.model.stacked import StackedZSCRGAN
    ds = load_dataset(make_dataset(str(tmp_path / "TINY"), **(data or {})))
    cfg = tiny_config(**overrides)
    return StackedZSCRGAN(cfg, seeds, ds.text_dim, ds.image_dim, ds), cfg, ds


def state(model):
    """{path: value} of every variable a standalone model's checkpoint holds (rng and sampler too)."""
    import tempfile

    import tensorflow as tf
    path = tf.train.Checkpoint(model=model).write(tempfile.mkdtemp() + "/ckpt")
    return {name: tf.train.load_variable(path, name) for name, _ in tf.train.list_variables(path)
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def one_round(model):
    """An E- and an M-step of 2 updates each: {loss: value as bytes}, a stacked model's (M,) arrays."""
    import tensorflow as tf
    two = tf.constant(2)
    return {name: value.numpy() for name, value in {**model.e_step(two, two), **model.m_step(two)}.items()}


def standalone_runs(cfg, ds, rounds_of):
    """{seed: ([each round's losses], final state)} of the standalone model of each seed, run for
    rounds_of[seed] rounds; every seed on one traced model, its variables set to the seed's fresh
    values first (as kept kernels do, zscrgan/run/kept_kernels.py), so it compiles once."""
    from zscrgan.model.em import ZSCRGAN
    from zscrgan.model.stacked import member_config
    from zscrgan.run.kept_kernels import state as variables
    runs, model = {}, None
    for seed, rounds in rounds_of.items():
        fresh = ZSCRGAN(member_config(cfg, seed), ds.text_dim, ds.image_dim, ds)
        if model is None:
            model = fresh
        for kept, value in zip(variables(model), variables(fresh)):
            kept.assign(value)
        runs[seed] = [one_round(model) for _ in range(rounds)], state(model)
    return runs


def assert_member_is_its_run(stacked, k, rounds, run):
    """Member k's losses of each round and its state equal its standalone run's, bit for bit."""
    losses, want = run
    for r, (got, own) in enumerate(zip(rounds, losses)):
        for name, value in own.items():
            assert got[name][k].tobytes() == value.tobytes(), (k, r, name)
    stacked.to_single(k)
    got = state(stacked.singles[k])
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=f"member {k}: {name}")


def test_each_member_steps_as_the_model_of_its_seed(tmp_path):
    """In the plain graph (jit_compile false), where other ops run per member than under XLA."""
    seeds = [3, 0, 7]
    stacked, cfg, ds = models(tmp_path, seeds)
    rounds = [one_round(stacked) for _ in range(2)]
    for k, (seed, run) in enumerate(standalone_runs(cfg, ds, {s: 2 for s in seeds}).items()):
        assert_member_is_its_run(stacked, k, rounds, run)


@pytest.mark.slow
def test_with_xla_at_the_demos_widths_each_member_is_its_seed_and_another_members_nan_stays_apart(tmp_path):
    """XLA (the default) at the demo's widths (configs/MFEAT.yml), where it picks other kernels
    than at tiny ones; then member 1's weights turn NaN, and member 0 still goes on as its run."""
    data = {"text_dim": 76, "image_dim": 240, "n_img": 40, "n_train": 7, "n_test": 3}
    stacked, cfg, ds = models(tmp_path, [0, 1], data, jit_compile=True, **DEMO_WIDTHS)
    rounds = [one_round(stacked)]
    runs = standalone_runs(cfg, ds, {0: 2, 1: 1})
    assert_member_is_its_run(stacked, 1, rounds, runs[1])
    kernel = stacked.layers["g1"].kernel
    kernel.assign(np.where(np.arange(2)[:, None, None] == 1, np.nan, kernel.numpy()))
    rounds.append(one_round(stacked))
    assert np.isnan(rounds[1]["g_loss"][1])
    assert_member_is_its_run(stacked, 0, rounds, runs[0])


def test_a_member_is_copied_from_and_to_its_standalone_model(tmp_path):
    """from_single copies a standalone model's weights and slots into the member's slice, to_single back."""
    from zscrgan.model.em import ZSCRGAN
    from zscrgan.model.stacked import member_config
    stacked, cfg, ds = models(tmp_path, [0, 1])
    singles = [ZSCRGAN(member_config(cfg, 0), ds.text_dim, ds.image_dim, ds)]
    for name, layer in singles[0].nets.layers().items():  # member 1 takes seed 0's weights
        stacked.singles[1].nets.layers()[name].kernel.assign(layer.kernel)
    stacked.from_single(1)
    for name, layer in singles[0].nets.layers().items():
        np.testing.assert_array_equal(stacked.layers[name].kernel[1], layer.kernel, err_msg=name)
        np.testing.assert_array_equal(stacked.layers[name].kernel[0], stacked.singles[0].nets.layers()[name].kernel)
    slot = stacked.opt_f.m[0]
    slot.assign(slot + np.arange(1, 3, dtype=np.float32).reshape([2] + [1] * (slot.shape.rank - 1)))
    stacked.to_single(1)
    np.testing.assert_array_equal(stacked.singles[1].opt_f.m[0], stacked.opt_f.m[0][1])
    assert not np.any(stacked.singles[0].opt_f.m[0].numpy())  # member 0's own model is not touched


def test_the_per_member_ops_are_read_off_xla_once_and_remembered(tmp_path, monkeypatch):
    from zscrgan.model import stacked_layers
    read = []
    monkeypatch.setattr(stacked_layers, "_chosen", {})
    monkeypatch.setattr(stacked_layers, "ynn_bias_layers", lambda *a: read.append(1) or {"g2"})

    class Store(dict):
        def put(self, key, value):
            self[key] = value

    store = Store()
    first, _, _ = models(tmp_path, [0, 1], jit_compile=True)
    stacked_layers._chosen.clear()
    assert stacked_layers.default_ops(first.cfg, first.singles[0], "/device:CPU:0", store) == first.ops
    assert read == [1, 1] and len(store) == 1 and "bias:g2" not in first.ops and "bias:g1" in first.ops
    stacked_layers._chosen.clear()
    assert stacked_layers.default_ops(first.cfg, first.singles[1], "/device:CPU:0", store) == first.ops
    assert read == [1, 1]  # the stored choice, without reading XLA's HLO again
