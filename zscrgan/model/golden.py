"""The golden check: this port's updates reproduce the authors' TF1 code (docs/algorithm.md, "How
we know"), shared by tests/test_reference_golden.py and `zscrgan devices`.

The vector, zscrgan/model/golden_vector/reference_steps.npz (its README.md says how it was made;
or another vector of the same format named by $ZSCRGAN_GOLDEN), holds initial weights, one
batch, fixed noise, a sequence of updates and the authors' losses and final weights. Every
dimension and hyperparameter comes from the file. `check` applies the updates eagerly, on
whatever device the caller's `tf.device` scope names.

Weights are compared by how far each layer moved, not by a flat absolute tolerance. Adam's
first steps are close to lr * sign(gradient), so on a near-zero gradient the float32 rounding
of an exact port (a different summation order than TF1's) can flip or rescale a step: up to
~1e-6 absolute at CSEM_lr 0.01, while a real mistake can be as small (Adam epsilon 1e-7
instead of 1e-8 moves CSEM kernel weights by up to 6e-6 here). Measured against the size of the
layer's own update, rounding stays below 1e-4 and such mistakes give 1e-3 or more.
"""
import dataclasses
import math
import os

import numpy as np
import tensorflow as tf
from easydict import EasyDict

from zscrgan import config as config_lib
from zscrgan.errors import BadInput
from zscrgan.model.em import ZSCRGAN

VECTOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_vector", "reference_steps.npz")
VECTOR_ENV = "ZSCRGAN_GOLDEN"  # names another vector of the same format

# Largest weight error / largest weight movement (reference final - reference initial) allowed
# per layer part. On the bundled vector: 7e-5 for an exact port (the CSEM kernel), 1.4e-3
# with Adam epsilon 1e-7, 0.4 or more with a LeakyReLU slope of 0.3.
MAX_RELATIVE_ERROR = 3e-4
# A movement below this counts as this much, so a part the reference left (nearly) unchanged
# (the critic's output bias: its gradient is exactly zero) must stay within 3e-12 of it.
MIN_MOVEMENT = 1e-8
# The three losses agree when |ours - reference| <= max(LOSS_RELATIVE * |reference|, LOSS_ABSOLUTE).
LOSS_RELATIVE, LOSS_ABSOLUTE = 1e-5, 1e-12
LOSSES = ("d_loss", "g_loss", "csem_loss")
HYPERPARAMETERS = ("discriminator_lr", "generator_lr", "CSEM_lr", "kl_div_coefficient", "mm_reg_coeff", "clip_val")
BATCH = ("real_images", "text", "eps", "eps_wrong", "z", "z1")


class GoldenError(BadInput):
    """The golden vector is missing or not of the format."""


def vector_path():
    """$ZSCRGAN_GOLDEN if set, else the packaged vector."""
    return os.environ.get(VECTOR_ENV) or VECTOR


def load(path=None):
    """The vector at `path` (default `vector_path()`): {key: numpy array}."""
    path = path or vector_path()
    if not os.path.isfile(path):
        raise GoldenError(f"golden vector not found at {path} (${VECTOR_ENV} names another)")
    with np.load(path) as g:
        return {k: g[k] for k in g.files}


def model_from(g):
    """A ZSCRGAN of the vector's dimensions and hyperparameters, holding its initial weights."""
    it = lambda k: int(g[k])
    overrides = {"embed_dim": it("E"), "z_dim": it("Z"), "gf_dim": it("gf_dim"), "df_dim": it("df_dim"),
                 "batch_size": it("batch_size"), "jit_compile": False,
                 **{k: float(g[k]) for k in HYPERPARAMETERS}}
    cfg = EasyDict(config_lib.merge(config_lib.defaults(), overrides, "golden vector"))
    model = ZSCRGAN(cfg, it("T"), it("I"))
    for name, layer in model.nets.layers().items():
        layer.kernel.assign(g[f"init/{name}/kernel"])
        layer.bias.assign(g[f"init/{name}/bias"])
    return model


def run_sequence(model, g, batch):
    """Apply the vector's updates in order, each on the same batch and noise."""
    v, t, eps, eps_w, z, z1 = batch
    sequence = str(g["sequence"]).split()
    if not set(sequence) <= {"D", "G", "C"}:
        raise GoldenError(f"the golden vector's sequence {sequence} holds an update other than D, G, C")
    for kind in sequence:
        if kind == "D":
            model.critic_update(v, t, model.generate(t, eps, z)[0])
        elif kind == "G":
            model.generator_update(v, t, eps, eps_w, z, z1)
        else:
            f, c1, _, _ = model.generate(t, eps, z)
            model.csem_update(f, c1, model.generate(tf.roll(t, 1, axis=0), eps_w, z1)[0])


def relative_error(ours, ref_final, ref_init):
    """max |ours - ref_final| / max |ref_final - ref_init| (the latter at least MIN_MOVEMENT)."""
    moved = np.max(np.abs(ref_final.astype(np.float64) - ref_init), initial=0.0)
    return np.max(np.abs(ours.astype(np.float64) - ref_final), initial=0.0) / max(moved, MIN_MOVEMENT)


def losses_agree(ours, reference):
    return abs(ours - reference) <= max(LOSS_RELATIVE * abs(reference), LOSS_ABSOLUTE)


@dataclasses.dataclass
class Result:
    """What the vector's updates gave here.

    losses: {"init_d_loss": (ours, reference), ...}, the three losses before ("init_") and after
        ("final_") the sequence; errors: {"<layer>/<part>": weight error / reference movement}.
    """
    losses: dict
    errors: dict

    def bad_losses(self, when):
        """The losses of `when` ("init" or "final") that disagree with the reference's."""
        return [key for key, (ours, ref) in self.losses.items() if key.startswith(when) and not losses_agree(ours, ref)]

    def bad_layers(self):
        return [key for key, err in self.errors.items() if not err <= MAX_RELATIVE_ERROR]

    @property
    def ok(self):
        return not (self.bad_losses("init") or self.bad_layers() or self.bad_losses("final"))

    def worst_layer(self):
        """The layer part with the largest error (a NaN counts as the largest): (name, error)."""
        key = max(self.errors, key=lambda k: (math.isnan(self.errors[k]), self.errors[k]))
        return key, self.errors[key]

    def report(self):
        """One line per layer part: its name and its error."""
        return "\n".join(f"  {key:<14}{err:.2e}" for key, err in self.errors.items())


def check(g=None):
    """Run vector g (default `load()`) here: the Result."""
    g = load() if g is None else g
    model = model_from(g)
    batch = [tf.constant(g[k]) for k in BATCH]

    def losses(when):
        got = model.losses(*batch)
        return {f"{when}_{k}": (float(got[k]), float(g[f"{when}_{k}"])) for k in LOSSES}

    before = losses("init")
    run_sequence(model, g, batch)
    errors = {f"{name}/{part}": float(relative_error(getattr(layer, part).numpy(), g[f"final/{name}/{part}"],
                                                     g[f"init/{name}/{part}"]))
              for name, layer in model.nets.layers().items() for part in ("kernel", "bias")}
    return Result({**before, **losses("final")}, errors)
