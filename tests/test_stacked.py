"""The stacked model (zscrgan/model/stacked.py, docs/algorithm.md §11.5): several seeds as one
model whose every member steps bit for bit as the standalone model of its seed."""
import numpy as np
import pytest

from conftest import make_dataset, tiny_config
from zscrgan.data.dataset import load_dataset

DEMO_WIDTHS = {"embed_dim": 128, "z_dim": 32, "gf_dim": 256, "df_dim": 256, "batch_size": 32}


def models(tmp_path, seeds, data=None, **overrides):
    """(stacked model, [standalone model of each seed]) on one tiny dataset."""
    from zscrgan.model.em import ZSCRGAN
    from zscrgan.model.stacked import StackedZSCRGAN, member_config
    ds = load_dataset(make_dataset(str(tmp_path / "TINY"), **(data or {})))
    cfg = tiny_config(**overrides)
    stacked = StackedZSCRGAN(cfg, seeds, ds.text_dim, ds.image_dim, ds)
    return stacked, [ZSCRGAN(member_config(cfg, s), ds.text_dim, ds.image_dim, ds) for s in seeds]


def state(model):
    """{path: value} of every variable a standalone model's checkpoint holds (rng and sampler too)."""
    import tensorflow as tf
    return {name: tf.train.load_variable(path, name) for path in [_save(model)]
            for name, _ in tf.train.list_variables(path) if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _save(model):
    import tempfile

    import tensorflow as tf
    return tf.train.Checkpoint(model=model).write(tempfile.mkdtemp() + "/ckpt")


def assert_members_are_their_runs(stacked, singles, rounds=2):
    import tensorflow as tf
    e, n, m = tf.constant(2), tf.constant(2), tf.constant(2)
    for _ in range(rounds):
        out = {**stacked.e_step(e, n), **stacked.m_step(m)}
        for k, single in enumerate(singles):
            own = {**single.e_step(e, n), **single.m_step(m)}
            for name, value in own.items():
                assert out[name].numpy()[k].tobytes() == value.numpy().tobytes(), (k, name)
    for k, single in enumerate(singles):
        stacked.to_single(k)
        got, want = state(stacked.singles[k]), state(single)
        assert sorted(got) == sorted(want)
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"member {k}: {name}")


@pytest.mark.parametrize("jit", [False, True])
def test_each_member_steps_as_the_model_of_its_seed(tmp_path, jit):
    stacked, singles = models(tmp_path, [3, 0, 7], jit_compile=jit)
    assert_members_are_their_runs(stacked, singles)


@pytest.mark.slow
def test_each_member_steps_as_the_model_of_its_seed_at_the_demos_widths(tmp_path):
    """The demo's widths (configs/MFEAT.yml), where XLA picks other kernels than at tiny ones."""
    data = {"text_dim": 76, "image_dim": 240, "n_img": 40, "n_train": 7, "n_test": 3}
    stacked, singles = models(tmp_path, [0, 1], data, jit_compile=True, **DEMO_WIDTHS)
    assert_members_are_their_runs(stacked, singles, rounds=1)


def test_a_member_is_unaffected_by_another_members_nan(tmp_path):
    """A diverged member's NaNs stay in its own slice: the others go on as their runs."""
    stacked, singles = models(tmp_path, [0, 1], jit_compile=True)
    kernel = stacked.layers["g1"].kernel
    kernel.assign(np.where(np.arange(2)[:, None, None] == 1, np.nan, kernel.numpy()))
    assert_members_are_their_runs(stacked, singles[:1], rounds=1)


def test_a_member_is_copied_from_and_to_its_standalone_model(tmp_path):
    """from_single copies a standalone model's weights and slots into the member's slice, to_single back."""
    stacked, singles = models(tmp_path, [0, 1])
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
    first, _ = models(tmp_path, [0, 1], jit_compile=True)
    stacked_layers._chosen.clear()
    assert stacked_layers.default_ops(first.cfg, first.singles[0], "/device:CPU:0", store) == first.ops
    assert read == [1, 1] and len(store) == 1 and "bias:g2" not in first.ops and "bias:g1" in first.ops
    stacked_layers._chosen.clear()
    assert stacked_layers.default_ops(first.cfg, first.singles[1], "/device:CPU:0", store) == first.ops
    assert read == [1, 1]  # the stored choice, without reading XLA's HLO again
