"""The pieces of a stacked model (docs/algorithm.md §11.5): layers, losses and optimizers whose
variables have a leading member axis M, each member rounding exactly as its standalone model.

Most ops give a member's slice of a stacked tensor the bits the standalone op gives the
member's own tensor (elementwise ops; on XLA, batched matmuls, slice for slice). Some do not:
they run member by member (`per_member`: tf.unstack along the member axis, the standalone op on
each slice, tf.stack: data movement only, and each other's gradient), which is the standalone
kernel at the standalone shape. The ops, by name (alone: every layer; "<op>:<layer>": one):

    "fwd"   a Dense layer's forward product x @ kernel    plain graph: all layers; XLA: out dim 1 (d2)
    "dx"    its input gradient g @ kernel^T               plain graph: all layers
    "dw"    its kernel gradient x^T @ g                   XLA: out dim 1 (d2)
    "bias"  its bias add, whose gradient sums rows        XLA: the layers XLA emits as its own loop
                                                          reduction standalone (not YNNPACK's)
    "opt"   RMSProp's g lr / sqrt(ms + eps)               plain graph
Every loss runs per member in both modes (`member_losses`). `default_ops` chooses the set.
Shapes: M members, R rows, B batch, E embed_dim.
"""
import re
import warnings

import numpy as np
import tensorflow as tf

from zscrgan.model import losses, networks
from zscrgan.model.em import graph_settings, step_counts
from zscrgan.model.optimizers import Adam, RMSProp

LAYERS = ("ca", "g1", "g2", "g3", "d1", "d2", "csem")  # networks.Networks' draw order
PLAIN_GRAPH_OPS = frozenset({"fwd", "dx", "opt"})


def per_member(fn, *stacked):
    """tf.stack([fn(x1[k], x2[k], ...) for each member k]); fn may return a tuple (each stacked).
    An argument given as a list is taken as already one tensor per member."""
    outs = [fn(*xs) for xs in zip(*(list(x) if isinstance(x, (list, tuple)) else tf.unstack(x) for x in stacked))]
    if isinstance(outs[0], (tuple, list)):
        return tuple(tf.stack(o) for o in zip(*outs))
    return tf.stack(outs)


# --------------------------------------------------------------------------- which ops per member


def layer_out_dims(cfg, image_dim):
    return {"ca": 2 * cfg.embed_dim, "g1": cfg.gf_dim, "g2": 2 * cfg.gf_dim, "g3": image_dim,
            "d1": cfg.df_dim, "d2": 1, "csem": cfg.embed_dim}


_BIAS_SUM = re.compile(r'op_name="gradient_tape/((?:while(?:_\d+)?/)+)add(?:_(\d+))?/Sum"')
_OUT_SIZE = re.compile(r"= f32\[(\d*)\]")


def ynn_bias_layers(model, cfg, device):
    """The layers whose bias gradient (a sum over rows) XLA gives to a YNNPACK fusion when it
    compiles the standalone model's E- and M-step on `device` (`/device:CPU:0`); it emits the others as its own
    loop reduction (after a reduce-window split), which sums in another order. Stacked, the
    batched sum over the rows of (M, R, out) goes to YNNPACK and a member's own (R, out) sum,
    fused with its slice, to the loop reduction, so each layer's bias gradient is taken the way
    the standalone program takes it.

    Read from the standalone steps' optimized HLO (compiled once more for this): the bias
    gradients' reductions, grouped by their loop (name prefix), each group in creation order
    (name suffix), matched to the layers by their output sizes.
    """
    e, n, m = step_counts(cfg)
    steps = {"e": (model.e_step, (e, n)), "m": (model.m_step, (m,))}
    groups = {}
    for kind, (fn, args) in steps.items():
        with warnings.catch_warnings():  # device_name is deprecated, but its successor draws an unseeded
            warnings.simplefilter("ignore")  # random number to find the device, which op determinism refuses
            hlo = fn.experimental_get_compiler_ir(*args)(stage="optimized_hlo", device_name=device)
        for line in hlo.splitlines():
            found = _BIAS_SUM.search(line)
            if found and "ROOT" not in line and ("fusion(" in line or " reduce(" in line):
                size = _OUT_SIZE.search(line)
                groups.setdefault((kind, found.group(1)), {})[int(found.group(2) or 0)] = (
                    int(size.group(1) or 1) if size else None, "__ynn_fusion" in line)
    out = layer_out_dims(cfg, model.nets.generator.image_dim)
    wanted = {"e": [("ca", "g1", "g2", "g3"), ("d1", "d2")], "m": [("csem",)]}
    ynn, matched = set(), set()
    for (kind, _), sums in groups.items():
        entries = [sums[i] for i in sorted(sums)]
        for names in wanted[kind]:
            sized = [n for n in names if out[n] > 1]  # a (rows, 1) sum may become another op
            if [s for s, _ in entries] in ([out[n] for n in names], [out[n] for n in sized]):
                chosen = names if len(entries) == len(names) else sized
                ynn |= {n for n, (_, is_ynn) in zip(chosen, entries) if is_ynn}
                matched |= set(chosen)
    missing = [n for n in LAYERS if n not in matched and out[n] > 1]
    if missing:
        raise RuntimeError(f"cannot find the standalone bias gradients of {missing} in XLA's HLO")
    return ynn


_chosen = {}  # ops_key: the ops default_ops chose in this process


def ops_key(cfg, model, device):
    """What the per-member ops depend on: the device, the config keys the steps read and the
    shapes of the sampler's data (text)."""
    s = model.sampler
    return repr((device, graph_settings(cfg), *(tuple(t.shape) for t in (s.images, s.texts, s.counts))))


def default_ops(cfg, model, device, remembered=None):
    """The per-member ops that make the stacked steps byte-identical to `model`'s (a standalone
    ZSCRGAN of the same config) under cfg.jit_compile, on `device`. Reading XLA's HLO compiles
    the standalone steps' HLO once more, so the choice is kept per process and, given
    `remembered` (an object with get(key) and put(key, value), e.g. the compile cache's), on disk."""
    if not cfg.jit_compile:
        return PLAIN_GRAPH_OPS
    key = ops_key(cfg, model, device)
    if key not in _chosen:
        known = remembered.get(key) if remembered is not None else None
        if known is None:
            out = layer_out_dims(cfg, model.nets.generator.image_dim)
            narrow = {f"{op}:{n}" for n in LAYERS if out[n] == 1 for op in ("fwd", "dw")}
            ynn = ynn_bias_layers(model, cfg, device)
            known = sorted(narrow | {f"bias:{n}" for n in LAYERS if n not in ynn})
            if remembered is not None:
                remembered.put(key, known)
        _chosen[key] = frozenset(known)
    return _chosen[key]


# --------------------------------------------------------------------------- networks


class StackedDense(tf.Module):
    """M Dense layers: kernel (M, in, out), bias (M, out); x (M, R, in) -> (M, R, out).

    The forward product and the three gradients are written out in a custom gradient, each
    batched or per member; per member they are exactly what TensorFlow's gradient of the
    standalone `x @ kernel + bias` computes.
    """

    def __init__(self, kernels, biases, name, ops):
        super().__init__(name=name)
        self.kernel = tf.Variable(np.stack(kernels), name="kernel")
        self.bias = tf.Variable(np.stack(biases), name="bias")
        self.member = {op: op in ops or f"{op}:{name}" in ops for op in ("fwd", "dx", "dw", "bias")}

    def __call__(self, x):
        pm = self.member

        @tf.custom_gradient
        def dense(x, w, b):
            xw = per_member(tf.matmul, x, w) if pm["fwd"] else tf.matmul(x, w)
            y = per_member(tf.add, xw, b) if pm["bias"] else xw + b[:, None, :]

            def grad(g):
                dx_of = lambda g, w: tf.matmul(g, w, transpose_b=True)  # noqa: E731
                dw_of = lambda x, g: tf.matmul(x, g, transpose_a=True)  # noqa: E731
                dx = per_member(dx_of, g, w) if pm["dx"] else dx_of(g, w)
                dw = per_member(dw_of, x, g) if pm["dw"] else dw_of(x, g)
                db = per_member(lambda g: tf.reduce_sum(g, 0), g) if pm["bias"] else tf.reduce_sum(g, 1)
                return dx, dw, db
            return y, grad

        return dense(x, self.kernel, self.bias)


class StackedGenerator(tf.Module):
    """CA + G of networks.Generator with the member axis in front (features on the last axis)."""

    def __init__(self, layers, embed_dim, z_dim):
        super().__init__(name="generator")
        self.ca, self.g1, self.g2, self.g3 = (layers[k] for k in ("ca", "g1", "g2", "g3"))
        self.embed_dim, self.z_dim = embed_dim, z_dim

    def condition(self, t, eps):
        h = networks.lrelu(self.ca(t))
        mu, log_sigma = h[..., :self.embed_dim], h[..., self.embed_dim:]
        return mu + tf.exp(log_sigma) * eps, mu, log_sigma

    def __call__(self, c, z):
        x = tf.concat([c, z], axis=-1)
        return tf.nn.relu(self.g3(networks.lrelu(self.g2(networks.lrelu(self.g1(x))))))


class StackedCritic(tf.Module):
    def __init__(self, layers):
        super().__init__(name="critic")
        self.d1, self.d2 = layers["d1"], layers["d2"]

    def __call__(self, v, t):
        return self.d2(networks.lrelu(self.d1(tf.concat([v, t], axis=-1))))


class StackedCSEM(tf.Module):
    def __init__(self, layers):
        super().__init__(name="csem_mapper")
        self.csem = layers["csem"]

    def __call__(self, v):
        return networks.lrelu(self.csem(v))


# --- one member's view of the stacked weights, running the standalone code itself ---------


class _DenseView:
    """Member k of a StackedDense as a networks.Dense: the same __call__, reading kernel[k], bias[k]."""
    __call__ = networks.Dense.__call__
    kernel = property(lambda self: self.layer.kernel[self.k])
    bias = property(lambda self: self.layer.bias[self.k])

    def __init__(self, layer, k):
        self.layer, self.k = layer, k


class _GeneratorView:
    condition = networks.Generator.condition
    __call__ = networks.Generator.__call__


class _CriticView:
    __call__ = networks.Critic.__call__


class _CSEMView:
    __call__ = networks.CSEM.__call__


class MemberNets:
    """Member k's networks with networks.Networks' attributes (generator, critic, csem),
    computing with the standalone classes' own methods on views of the stacked weights."""

    def __init__(self, layers, embed_dim, z_dim, k):
        view = {name: _DenseView(layer, k) for name, layer in layers.items()}
        self.generator, self.critic, self.csem = _GeneratorView(), _CriticView(), _CSEMView()
        for name in ("ca", "g1", "g2", "g3"):
            setattr(self.generator, name, view[name])
        self.generator.embed_dim, self.generator.z_dim = embed_dim, z_dim
        self.critic.d1, self.critic.d2 = view["d1"], view["d2"]
        self.csem.csem = view["csem"]


# --------------------------------------------------------------------------- losses


def generator_loss_terms(cfg, f_embed, c1, fw_embed, f, v, v_w, mu1, s1, mu2, s2, d_fake, g_sum):
    """The loss half of em.ZSCRGAN._generator_losses for one member's (B, ...) slices, op for
    op, with the E-step's running sum g_sum added in: {g_sum: g_sum + L_G, csem_loss, kl_loss, mm}.

    One function on purpose. Grappler's arithmetic optimizer rewrites a tree of adds whose inner
    nodes have one consumer into one AddN, its inputs in the tree's leaf order; standalone, the
    E-step's `g_sum + g_loss` and L_G's four terms become one AddN. Computed here from the same
    leaves in the same tree, they are added in the same order.
    """
    l_c = losses.csem_loss(f_embed, c1, fw_embed)
    mm = losses.margin_term(f, v, v_w, cfg.margin)
    kl1, kl2 = losses.kl_loss(mu1, s1), losses.kl_loss(mu2, s2)
    g_loss = losses.generator_loss(d_fake, l_c, mm, kl1, kl2, cfg.mm_reg_coeff, cfg.kl_div_coefficient)
    return {"g_sum": g_sum + g_loss, "csem_loss": l_c, "kl_loss": (kl1 + kl2) / 2.0, "mm": mm}


def member_generator_terms(cfg, tensors, g_sums):
    """generator_loss_terms for every member: tensors (f_embed, c1, fw_embed, f, v, v_w, mu1,
    s1, mu2, s2, d_fake), each (M, B, ...); g_sums a list of M scalars. Returns {g_sums: [M
    scalars], csem_loss, kl_loss, mm: (M,) each}."""
    terms = [generator_loss_terms(cfg, *xs, g_sum)
             for xs, g_sum in zip(zip(*(tf.unstack(x) for x in tensors)), g_sums)]
    out = {name: tf.stack([t[name] for t in terms]) for name in ("csem_loss", "kl_loss", "mm")}
    return {"g_sums": [t["g_sum"] for t in terms], **out}


# --------------------------------------------------------------------------- optimizers


class StackedRMSProp(RMSProp):
    """optimizers.RMSProp on stacked variables. With "opt" in ops the step g lr / sqrt(ms + eps)
    is computed per member: grappler turns it into g lr rsqrt(ms + eps), and Eigen's vectorised
    rsqrt rounds unlike its scalar one, which takes a tensor's last elements (size mod the
    packet); stacked, a member's elements sit elsewhere."""

    def __init__(self, variables, learning_rate, ops, name="rmsprop", **kw):
        super().__init__(variables, learning_rate, name=name, **kw)
        self.member = "opt" in ops

    def apply(self, grads, variables):
        step = lambda g, ms: g * self.lr / tf.sqrt(ms + self.epsilon)  # noqa: E731
        for g, v, ms in zip(grads, variables, self.ms):
            ms.assign_add((tf.square(g) - ms) * (1.0 - self.rho))  # exact per element: stacked
            v.assign_sub(per_member(step, g, ms) if self.member else step(g, ms))


class StackedAdam(Adam):
    """optimizers.Adam with per-member beta powers (M,); slots stacked like the weights.
    Every operation is exactly rounded per element (sqrt, divide), so it runs stacked."""

    def __init__(self, variables, learning_rate, n_members, name="adam", **kw):
        super().__init__(variables, learning_rate, name=name, **kw)
        self.beta1_power = tf.Variable(tf.fill([n_members], self.beta1), trainable=False, name="beta1_power")
        self.beta2_power = tf.Variable(tf.fill([n_members], self.beta2), trainable=False, name="beta2_power")

    def apply(self, grads, variables):
        lr_t = self.lr * tf.sqrt(1.0 - self.beta2_power) / (1.0 - self.beta1_power)  # (M,)
        for g, var, m, v in zip(grads, variables, self.m, self.v):
            m.assign_add((g - m) * (1.0 - self.beta1))
            v.assign_add((tf.square(g) - v) * (1.0 - self.beta2))
            lr_k = tf.reshape(lr_t, [-1] + [1] * (var.shape.rank - 1))
            var.assign_sub(lr_k * m / (tf.sqrt(v) + self.epsilon))
        self.beta1_power.assign(self.beta1_power * self.beta1)
        self.beta2_power.assign(self.beta2_power * self.beta2)


def named_slots(opt):
    """[(name, slot)] of an optimizers.RMSProp or Adam (or a stacked one), in a fixed order."""
    if isinstance(opt, RMSProp):
        return [(f"ms/{i}", v) for i, v in enumerate(opt.ms)]
    return ([(f"m/{i}", v) for i, v in enumerate(opt.m)] + [(f"v/{i}", v) for i, v in enumerate(opt.v)]
            + [("beta1_power", opt.beta1_power), ("beta2_power", opt.beta2_power)])
