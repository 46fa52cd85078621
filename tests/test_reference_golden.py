"""The golden test: the project's updates reproduce the authors' TF1 code.

tests/data/reference_steps.npz (tests/data/README.md; or another vector of the same format
named by $ZSCRGAN_GOLDEN) holds initial weights, one batch, fixed noise, a sequence of
updates and the authors' losses and final weights. Every dimension and hyperparameter comes
from the file.

Weights are compared by how far each layer moved, not by a flat absolute tolerance. Adam's
first steps are close to lr * sign(gradient), so on a near-zero gradient the float32 rounding
of an exact port (a different summation order than TF1's) can flip or rescale a step: up to
~1e-6 absolute at CSEM_lr 0.01, while a real mistake can be as small (Adam epsilon 1e-7
instead of 1e-8 moves CSEM kernel weights by up to 6e-6 here). Measured against the size of the
layer's own update, rounding stays below 1e-4 and such mistakes give 1e-3 or more.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, tiny_config
from zscrgan.model.em import ZSCRGAN

GOLDEN = os.environ.get("ZSCRGAN_GOLDEN", os.path.join(ROOT, "tests", "data", "reference_steps.npz"))

# Largest weight error / largest weight movement (reference final - reference initial) allowed
# per layer part. On the bundled vector: 7e-5 for an exact port (the CSEM kernel), 1.4e-3
# with Adam epsilon 1e-7, 0.4 or more with a LeakyReLU slope of 0.3.
MAX_RELATIVE_ERROR = 3e-4
# A movement below this counts as this much, so a part the reference left (nearly) unchanged
# (the critic's output bias: its gradient is exactly zero) must stay within 3e-12 of it.
MIN_MOVEMENT = 1e-8


@pytest.fixture(scope="module")
def golden():
    assert os.path.isfile(GOLDEN), f"golden vector not found at {GOLDEN} (ZSCRGAN_GOLDEN names another)"
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


def relative_error(ours, ref_final, ref_init):
    """max |ours - ref_final| / max |ref_final - ref_init| (the latter at least MIN_MOVEMENT)."""
    moved = np.max(np.abs(ref_final.astype(np.float64) - ref_init), initial=0.0)
    return np.max(np.abs(ours.astype(np.float64) - ref_final), initial=0.0) / max(moved, MIN_MOVEMENT)


def run_sequence(model, g, batch):
    """Apply the vector's updates in order, each on the same batch and noise."""
    v, t, eps, eps_w, z, z1 = batch
    sequence = str(g["sequence"]).split()
    assert set(sequence) <= {"D", "G", "C"}, sequence
    for kind in sequence:
        if kind == "D":
            model.critic_update(v, t, model.generate(t, eps, z)[0])
        elif kind == "G":
            model.generator_update(v, t, eps, eps_w, z, z1)
        else:
            f, c1, _, _ = model.generate(t, eps, z)
            model.csem_update(f, c1, model.generate(tf.roll(t, 1, axis=0), eps_w, z1)[0])


def test_updates_reproduce_the_reference(golden, record_property):
    g = golden
    model = model_from(g)
    batch = [tf.constant(g[k]) for k in ("real_images", "text", "eps", "eps_wrong", "z", "z1")]
    assert_losses(model, g, batch, "init")
    run_sequence(model, g, batch)
    errors = {}
    for name, layer in model.nets.layers().items():
        for part in ("kernel", "bias"):
            errors[f"{name}/{part}"] = relative_error(getattr(layer, part).numpy(), g[f"final/{name}/{part}"],
                                                      g[f"init/{name}/{part}"])
    report = "\n".join(f"  {key:<14}{err:.2e}" for key, err in errors.items())
    print(f"\n{GOLDEN}: weight error / reference movement per layer (limit {MAX_RELATIVE_ERROR:.0e})\n{report}")
    for key, err in errors.items():
        record_property(f"relative_error/{key}", float(err))
    bad = [key for key, err in errors.items() if not err <= MAX_RELATIVE_ERROR]
    assert not bad, f"{', '.join(bad)} differ from the reference by more than {MAX_RELATIVE_ERROR:.0e} " \
                    f"of their update:\n{report}"
    assert_losses(model, g, batch, "final")
