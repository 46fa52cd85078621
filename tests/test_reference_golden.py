"""The golden test: the project's updates reproduce the authors' TF1 code.

../shared/golden/reference_steps.npz (or $ZSCRGAN_GOLDEN) holds initial weights, one batch,
fixed noise, a sequence of updates and the authors' losses and final weights. Every
dimension and hyperparameter comes from the file.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, tiny_config
from zscrgan.training import ZSCRGAN

GOLDEN = os.environ.get("ZSCRGAN_GOLDEN",
                        os.path.join(os.path.dirname(ROOT), "shared", "golden", "reference_steps.npz"))


@pytest.fixture(scope="module")
def golden():
    if not os.path.isfile(GOLDEN):
        pytest.skip(f"golden vector not found at {GOLDEN} (set ZSCRGAN_GOLDEN)")
    with np.load(GOLDEN) as g:
        return {k: g[k] for k in g.files}


def model_from(g):
    it = lambda k: int(g[k])
    cfg = tiny_config(embed_dim=it("E"), z_dim=it("Z"), gf_dim=it("gf_dim"), df_dim=it("df_dim"),
                      batch_size=it("batch_size"), **{k: float(g[k]) for k in (
                          "discriminator_lr", "generator_lr", "CSEM_lr", "kl_div_coefficient",
                          "mm_reg_coeff", "clip_val")})
    model = ZSCRGAN(cfg, it("T"), it("I"))
    for name, layer in model.nets.layers().items():
        layer.kernel.assign(g[f"init/{name}/kernel"])
        layer.bias.assign(g[f"init/{name}/bias"])
    return model


def assert_losses(model, g, batch, when):
    got = model.losses(*batch)
    for key in ("d_loss", "g_loss", "csem_loss"):
        want = float(g[f"{when}_{key}"])
        assert float(got[key]) == pytest.approx(want, rel=1e-5, abs=1e-12), f"{when}_{key}"


def test_updates_reproduce_the_reference(golden):
    g = golden
    model = model_from(g)
    batch = [tf.constant(g[k]) for k in ("real_images", "text", "eps", "eps_wrong", "z", "z1")]
    v, t, eps, eps_w, z, z1 = batch
    assert_losses(model, g, batch, "init")
    sequence = str(g["sequence"]).split()
    assert set(sequence) <= {"D", "G", "C"}
    for kind in sequence:
        if kind == "D":
            model.critic_update(v, t, model.generate(t, eps, z)[0])
        elif kind == "G":
            model.generator_update(v, t, eps, eps_w, z, z1)
        else:
            f, c1, _, _ = model.generate(t, eps, z)
            model.csem_update(f, c1, model.generate(tf.roll(t, 1, axis=0), eps_w, z1)[0])
    for name, layer in model.nets.layers().items():
        for part in ("kernel", "bias"):
            np.testing.assert_allclose(getattr(layer, part).numpy(), g[f"final/{name}/{part}"],
                                       rtol=0, atol=1e-6, err_msg=f"{name}/{part}")
    assert_losses(model, g, batch, "final")
