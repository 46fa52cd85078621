"""Every loss against a NumPy transcription of docs/algorithm.md §2-3, on fixed weights and batch."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from zscrgan.model import losses
from zscrgan.model.em import ZSCRGAN

T, I, B = 6, 5, 4


def np_lrelu(x):
    return np.maximum(x, 0.2 * x)


def np_l2n(x):
    return x / np.sqrt(np.maximum((x ** 2).sum(1, keepdims=True), 1e-12))


def np_losses(W, cfg, v, t, eps, eps_w, z, z1):
    dense = lambda x, n: x @ W[n][0] + W[n][1]
    E = cfg.embed_dim

    def ca(tt, e):
        h = np_lrelu(dense(tt, "ca"))
        mu, s = h[:, :E], h[:, E:]
        return mu + np.exp(s) * e, mu, s

    def kl(mu, s):
        m = (mu + s) / 2
        K = lambda a, b: np.mean(-b + 0.5 * (-1 + np.exp(2 * b) + a ** 2))
        return 0.5 * (K(mu, m) + K(s, m))

    G = lambda c, zz: np.maximum(dense(np_lrelu(dense(np_lrelu(dense(np.concatenate([c, zz], 1), "g1")), "g2")), "g3"), 0)
    D = lambda vv, tt: dense(np_lrelu(dense(np.concatenate([vv, tt], 1), "d1")), "d2")
    F = lambda vv: np_lrelu(dense(vv, "csem"))
    v_w, t_w = np.roll(v, 1, 0), np.roll(t, 1, 0)
    c1, mu1, s1 = ca(t, eps)
    c1w, mu2, s2 = ca(t_w, eps_w)
    f, fw = G(c1, z), G(c1w, z1)
    d_loss = (D(f, t).mean() + D(v_w, t).mean()) / 2 - D(v, t).mean()
    mm = np.abs(f - v).sum(1).mean() - np.abs(f - v_w).sum(1).mean() + 2.0
    a, b, aw = np_l2n(F(f)), np_l2n(c1), np_l2n(F(fw))
    l_c = np.log(1 + np.exp((aw * b).sum(1).mean() - (a * b).sum(1).mean()))
    kl1, kl2 = kl(mu1, s1), kl(mu2, s2)
    g_loss = -D(f, t).mean() + l_c + cfg.mm_reg_coeff * mm + cfg.kl_div_coefficient * (kl1 + kl2) / 2
    return {"d_loss": d_loss, "g_loss": g_loss, "csem_loss": l_c, "kl_loss": (kl1 + kl2) / 2, "mm": mm}


@pytest.fixture
def fixed():
    cfg = tiny_config(mm_reg_coeff=1.5, kl_div_coefficient=0.7)
    model = ZSCRGAN(cfg, T, I)
    rng = np.random.default_rng(3)
    W = {}
    for name, layer in model.nets.layers().items():
        # Larger than the 0.02 init so every term (the KL term too) is far from trivial.
        k = rng.normal(0, 0.5, layer.kernel.shape).astype(np.float32)
        b_ = rng.normal(1.0 if name == "g3" else 0.0, 0.1, layer.bias.shape).astype(np.float32)
        layer.kernel.assign(k), layer.bias.assign(b_)
        W[name] = (k.astype(np.float64), b_.astype(np.float64))
    E, Z = cfg.embed_dim, cfg.z_dim
    batch = [rng.uniform(0, 1, (B, I)), rng.normal(size=(B, T)), rng.normal(size=(B, E)),
             rng.normal(size=(B, E)), rng.normal(size=(B, Z)), rng.normal(size=(B, Z))]
    return cfg, model, W, [x.astype(np.float32) for x in batch]


def test_every_loss_matches_the_numpy_formulas(fixed):
    cfg, model, W, batch = fixed
    got = {k: float(v) for k, v in model.losses(*[tf.constant(x) for x in batch]).items()}
    want = np_losses(W, cfg, *[x.astype(np.float64) for x in batch])
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-6), k
    assert abs(want["mm"] - 2.0) > 1e-3 and want["kl_loss"] > 1e-3  # the terms are exercised


def test_small_functions_on_hand_values():
    assert float(losses.critic_loss(tf.constant([[1.0], [3.0]]), tf.constant([[0.0], [2.0]]),
                                    tf.constant([[4.0], [0.0]]))) == pytest.approx((2.0 + 1.0) / 2 - 2.0)
    f, v = tf.constant([[1.0, 1.0], [0.0, 0.0]]), tf.constant([[1.0, 0.0], [0.0, 2.0]])
    # |f-v|_1 = [1, 2]; v_w = roll(v) = [[0,2],[1,0]]: |f-v_w|_1 = [2, 1]; no hinge, can go below 0
    assert float(losses.margin_term(f, v, tf.roll(v, 1, 0), 2.0)) == pytest.approx(1.5 - 1.5 + 2.0)
    assert float(losses.margin_term(f, v, v + 10.0, 0.0)) < 0
    assert float(losses.kl_loss(tf.zeros([2, 3]), tf.zeros([2, 3]))) == pytest.approx(0.0)
    same = tf.constant([[1.0, 0.0]])
    # aligned positive, orthogonal negative: log(1 + e^(0 - 1))
    assert float(losses.csem_loss(same, same, tf.constant([[0.0, 3.0]]))) == pytest.approx(np.log1p(np.exp(-1.0)))
    assert float(losses.generator_loss(tf.constant([[2.0]]), 1.0, 3.0, 0.5, 1.5, 2.0, 4.0)) == pytest.approx(-2 + 1 + 6 + 4)
