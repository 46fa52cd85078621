"""The compiled E- and M-steps: same numbers as one update at a time, no retracing."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import make_dataset, tiny_config
from zscrgan.data.dataset import load_dataset
from zscrgan.model.evaluation import Evaluator
from zscrgan.model.em import ZSCRGAN


@pytest.fixture
def dataset(tmp_path):
    return load_dataset(make_dataset(str(tmp_path / "D"), n_train=5, n_img=6))


def pair(dataset, **overrides):
    """Two models with the same seed: same weights, sampler state and random stream."""
    cfg = tiny_config(**overrides)
    return [ZSCRGAN(cfg, dataset.text_dim, dataset.image_dim, dataset) for _ in range(2)]


def assert_same_state(a, b):
    for va, vb in zip(a.variables, b.variables):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-6, err_msg=va.name)


def one_at_a_time_e_step(model, e_steps, n_critic):
    """The E-step's updates one by one, each with its own generator pass."""
    d_sum, g_sum = tf.constant(0.0), tf.constant(0.0)
    for _ in tf.range(e_steps):
        x = model.draw(n_critic)
        for j in tf.range(n_critic):
            f = model.generate(x["t"][j], x["eps"][j], x["z"][j])[0]
            d_sum += model.critic_update(x["v"][j], x["t"][j], f)
        x = model.draw(1)
        g_sum += model.generator_update(*(x[k][0] for k in ("v", "t", "eps", "eps_w", "z", "z1")))["g_loss"]
    return d_sum / tf.cast(e_steps * n_critic, tf.float32), g_sum / tf.cast(e_steps, tf.float32)


def one_at_a_time_m_step(model, m_steps):
    x = model.draw(m_steps)
    total = tf.constant(0.0)
    for j in tf.range(m_steps):
        f, c1, _, _ = model.generate(x["t"][j], x["eps"][j], x["z"][j])
        fw = model.generate(tf.roll(x["t"][j], 1, axis=0), x["eps_w"][j], x["z1"][j])[0]
        total += model.csem_update(f, c1, fw)
    return total / tf.cast(m_steps, tf.float32)


# Both modes: XLA once read two slices of one tensor inside a loop as the same rows.
# Compiling with XLA takes most of these tests' time, hence slow.
BOTH_MODES = [False, pytest.param(True, marks=pytest.mark.slow)]


@pytest.mark.parametrize("jit", BOTH_MODES)
def test_fused_e_step_equals_updates_one_at_a_time(dataset, jit):
    fused, single = pair(dataset, batch_size=3, jit_compile=jit)
    before = [v.numpy().copy() for v in fused.nets.trainable_variables]
    out = fused.e_step(tf.constant(2), tf.constant(3))
    d_loss, g_loss = tf.function(lambda: one_at_a_time_e_step(single, 2, 3), jit_compile=jit)()
    assert_same_state(fused, single)
    assert float(out["d_loss"]) == pytest.approx(float(d_loss), rel=1e-5, abs=1e-7)
    assert float(out["g_loss"]) == pytest.approx(float(g_loss), rel=1e-5)
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, fused.nets.trainable_variables)]
    n_g = len(fused.g_vars)
    assert any(changed[:n_g]) and all(changed[n_g:n_g + len(fused.d_vars)])  # G and D moved


@pytest.mark.parametrize("jit", BOTH_MODES)
def test_fused_m_step_equals_updates_one_at_a_time(dataset, jit):
    fused, single = pair(dataset, jit_compile=jit)
    g_before = [v.numpy().copy() for v in fused.g_vars]
    out = fused.m_step(tf.constant(4))
    loss = tf.function(lambda: one_at_a_time_m_step(single, 4), jit_compile=jit)()
    assert_same_state(fused, single)
    assert float(out["csem_loss"]) == pytest.approx(float(loss), rel=1e-5)
    assert float(out["csem_loss"]) != pytest.approx(np.log(2.0), abs=1e-6)  # real and wrong differ
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(g_before, fused.g_vars))  # G is fixed


def test_critic_is_clipped_after_every_e_step(dataset):
    model, _ = pair(dataset, clip_val=0.001, discriminator_lr=0.5)
    model.e_step(tf.constant(2), tf.constant(2))
    extreme = max(float(tf.reduce_max(tf.abs(v))) for v in model.d_vars)
    assert extreme == pytest.approx(0.001)


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
def test_rounds_do_not_retrace(dataset, jit):
    model, _ = pair(dataset, jit_compile=jit)
    evaluator = Evaluator(dataset, model.nets, model.rng, k=5, chunk=4)
    for _ in range(3):
        out = model.e_step(tf.constant(2), tf.constant(2))
        model.m_step(tf.constant(2))
        evaluator.evaluate()
    assert model.e_step.experimental_get_tracing_count() == 1
    assert model.m_step.experimental_get_tracing_count() == 1
    assert evaluator._embed_queries.experimental_get_tracing_count() <= 2  # full and last chunk
    assert np.isfinite(float(out["g_loss"]))
