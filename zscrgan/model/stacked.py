"""Several seeds ("members") of ZSCRGAN trained as one stacked model (docs/algorithm.md §11.5).

Every weight, optimizer slot and Adam power has a leading member axis M; the E- and M-step
are one compiled call each for every member. Each member keeps the tf.random.Generator and
the BatchSampler of its standalone model (em.ZSCRGAN built with its seed), drawn in the
standalone order inside the steps, and rounds as the standalone model does (stacked_layers),
so member k is byte for byte the run of seed k alone. Shapes: M members, n batches, B batch,
T text, I image, E embed_dim, Z z_dim; inside the steps batches are laid out (n, M, B, ...) so
that loops index only the leading axis (docs/algorithm.md §10.3).
"""
import tensorflow as tf
from easydict import EasyDict

from zscrgan.data.dataset import eval_split
from zscrgan.model.em import ZSCRGAN, repeat
from zscrgan.model.evaluation import Evaluator
from zscrgan.model.stacked_layers import (LAYERS, MemberNets, StackedAdam, StackedCritic, StackedCSEM, StackedDense,
                                          StackedGenerator, StackedRMSProp, default_ops, member_generator_terms,
                                          named_slots, per_member)
from zscrgan.model import losses


def member_config(cfg, seed):
    """A member's config: the group's with its own seed."""
    return EasyDict({**cfg, "seed": int(seed)})


class StackedZSCRGAN(tf.Module):
    """M seeds of ZSCRGAN as one model: e_step(e_steps, n_critic), m_step(m_steps) -> {loss: (M,)}.

    Member k is initialised by building the standalone ZSCRGAN of seeds[k] eagerly (its
    networks, then its sampler, from its own generator) and copying its variables in; the
    member keeps that model (`singles[k]`): its generator and sampler are the member's own,
    and its networks and slots receive the member's values to be checkpointed in the standalone
    layout (`to_single`). device: where the steps run, for the choice of per-member ops
    (stacked_layers.default_ops; per_member_ops gives them instead, remembered keeps the choice).
    """

    def __init__(self, cfg, seeds, text_dim, image_dim, dataset, device="/device:CPU:0", per_member_ops=None,
                 remembered=None):
        super().__init__(name="stacked_zscrgan")
        self.cfg, self.seeds = cfg, [int(s) for s in seeds]
        self.M = M = len(self.seeds)
        self.singles = [ZSCRGAN(member_config(cfg, s), text_dim, image_dim, dataset) for s in self.seeds]
        self.ops = (default_ops(cfg, self.singles[0], device, remembered) if per_member_ops is None
                    else frozenset(per_member_ops))
        self.rngs = [s.rng for s in self.singles]
        self.samplers = [s.sampler for s in self.singles]
        for s in self.samplers[1:]:  # one copy of the training split in the graph
            for name in ("class_ids", "images", "texts", "counts", "offsets"):
                setattr(s, name, getattr(self.samplers[0], name))
        single_layers = [s.nets.layers() for s in self.singles]
        self.layers = {name: StackedDense([l[name].kernel.numpy() for l in single_layers],
                                          [l[name].bias.numpy() for l in single_layers], name, self.ops)
                       for name in LAYERS}
        self.generator = StackedGenerator(self.layers, cfg.embed_dim, cfg.z_dim)
        self.critic = StackedCritic(self.layers)
        self.csem = StackedCSEM(self.layers)
        # The variable groups in the standalone order (tf.Module's: bias before kernel), so that
        # slot i of each optimizer is the standalone slot i.
        where = {id(getattr(layer, kind)): (name, kind) for name, layer in single_layers[0].items()
                 for kind in ("kernel", "bias")}
        stacked_of = lambda variables: [getattr(self.layers[where[id(v)][0]], where[id(v)][1])  # noqa: E731
                                        for v in variables]
        first = self.singles[0]
        self.g_vars, self.d_vars, self.f_vars = stacked_of(first.g_vars), stacked_of(first.d_vars), stacked_of(first.f_vars)
        self.opt_d = StackedRMSProp(self.d_vars, cfg.discriminator_lr, self.ops, name="critic_rmsprop")
        self.opt_g = StackedRMSProp(self.g_vars, cfg.generator_lr, self.ops, name="generator_rmsprop")
        self.opt_f = StackedAdam(self.f_vars, cfg.CSEM_lr, M, name="csem_adam")
        for k in range(M):
            self.from_single(k)
        self.new_steps()

    def new_steps(self):
        """(Re)make the compiled `e_step` and `m_step` (traced at their next call)."""
        jit = self.cfg.jit_compile
        self.e_step = tf.function(self._e_step, jit_compile=jit, autograph=False)
        self.m_step = tf.function(self._m_step, jit_compile=jit, autograph=False)

    # --- one batch per member: (M, B, ...) --------------------------------------------

    def generate(self, t, eps, z):
        c, mu, log_sigma = self.generator.condition(t, eps)
        return self.generator(c, z), c, mu, log_sigma

    def _generator_losses(self, v, t, eps, eps_w, z, z1, g_sums):
        """em.ZSCRGAN._generator_losses for every member, each member's running sum g_sums[k]
        added in: ({g_sums: [M], csem_loss, kl_loss, mm: (M,)}, f (M, B, I))."""
        v_w, t_w = tf.roll(v, 1, axis=1), tf.roll(t, 1, axis=1)
        both, c, mu, s = self.generate(tf.concat([t, t_w], 1), tf.concat([eps, eps_w], 1), tf.concat([z, z1], 1))
        f, fw = tf.split(both, 2, axis=1)
        f_embed, fw_embed = tf.split(self.csem(both), 2, axis=1)
        c1 = tf.split(c, 2, axis=1)[0]
        (mu1, mu2), (s1, s2) = tf.split(mu, 2, axis=1), tf.split(s, 2, axis=1)
        tensors = (f_embed, c1, fw_embed, f, v, v_w, mu1, s1, mu2, s2, self.critic(f, t))
        return member_generator_terms(self.cfg, tensors, g_sums), f

    def critic_scores(self, f, v_w, v, t):
        scores = self.critic(tf.concat([f, v_w, v], 1), tf.concat([t, t, t], 1))
        return tf.split(scores, 3, axis=1)

    # --- the three updates, every member at once ------------------------------------------

    def critic_update(self, v, t, f):
        with tf.GradientTape() as tape:
            d_loss = per_member(losses.critic_loss, *self.critic_scores(f, tf.roll(v, 1, axis=1), v, t))
        self.opt_d.apply(tape.gradient(d_loss, self.d_vars), self.d_vars)
        for var in self.d_vars:
            var.assign(tf.clip_by_value(var, -self.cfg.clip_val, self.cfg.clip_val))
        return d_loss

    def generator_update(self, v, t, eps, eps_w, z, z1, g_sums):
        """One RMSProp step on L_G per member; the losses before the step. The gradient of
        g_sum + L_G is that of L_G, bit for bit."""
        with tf.GradientTape() as tape:
            out, _ = self._generator_losses(v, t, eps, eps_w, z, z1, g_sums)
        self.opt_g.apply(tape.gradient(out["g_sums"], self.g_vars), self.g_vars)
        return out

    def csem_update(self, f, c, fw):
        with tf.GradientTape() as tape:
            f_embed, fw_embed = tf.split(self.csem(tf.concat([f, fw], 1)), 2, axis=1)
            l_c = per_member(losses.csem_loss, f_embed, c, fw_embed)
        self.opt_f.apply(tape.gradient(l_c, self.f_vars), self.f_vars)
        return l_c

    # --- compiled steps ------------------------------------------------------------------

    def draw(self, n):
        """n batches and their noise for every member: a dict of (n, M, B, ...) tensors.

        Member k's sampler and generator are drawn as em.ZSCRGAN.draw draws them: its n batches
        in order (one loop, every member's sampler in each iteration), then eps, eps_w, z, z1
        for all n, each of the standalone shape. A member's draws touch only its own generator
        and sampler, so interleaving members changes nothing.
        """
        M, B, E, Z = self.M, self.cfg.batch_size, self.cfg.embed_dim, self.cfg.z_dim
        s0 = self.samplers[0]
        vs = tf.TensorArray(tf.float32, size=n, element_shape=[M, B, s0.images.shape[1]])
        ts = tf.TensorArray(tf.float32, size=n, element_shape=[M, B, s0.texts.shape[1]])

        def one_batch(i, ts, vs):
            drawn = [s.sample()[:2] for s in self.samplers]
            return ts.write(i, tf.stack([t for _, t in drawn])), vs.write(i, tf.stack([v for v, _ in drawn]))

        ts, vs = repeat(n, one_batch, ts, vs)
        noise = [(g.truncated_normal([n, B, E]), g.truncated_normal([n, B, E]), g.normal([n, B, Z]),
                  g.normal([n, B, Z])) for g in self.rngs]
        eps, eps_w, z, z1 = (tf.stack(parts, axis=1) for parts in zip(*noise))
        return {"v": vs.stack(), "t": ts.stack(), "eps": eps, "eps_w": eps_w, "z": z, "z1": z1}

    def generate_many(self, t, eps, z):
        """t (n, M, B, T) -> f (n, M, B, I), c (n, M, B, E): one pass of n·B rows per member."""
        n, M, B = tf.shape(t)[0], self.M, tf.shape(t)[2]
        rows = lambda x: tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [M, n * B, -1])  # noqa: E731
        back = lambda x: tf.transpose(tf.reshape(x, [M, n, B, -1]), [1, 0, 2, 3])  # noqa: E731
        f, c, _, _ = self.generate(rows(t), rows(eps), rows(z))
        return back(f), back(c)

    def _e_step(self, e_steps, n_critic):
        """em.ZSCRGAN._e_step for every member; the generator loss sums are M scalar loop
        variables, each added inside its member's loss terms."""
        def iteration(i, d_sum, kl_sum, *g_sums):
            x = self.draw(n_critic)
            f, _ = self.generate_many(x["t"], x["eps"], x["z"])
            critic = lambda j, d_sum: (d_sum + self.critic_update(x["v"][j], x["t"][j], f[j]),)  # noqa: E731
            d_sum, = repeat(n_critic, critic, d_sum)
            x = self.draw(1)
            out = self.generator_update(*(x[k][0] for k in ("v", "t", "eps", "eps_w", "z", "z1")), g_sums=g_sums)
            return (d_sum, kl_sum + out["kl_loss"], *out["g_sums"])

        d_sum, kl_sum, *g_sums = repeat(e_steps, iteration, tf.zeros([self.M]), tf.zeros([self.M]),
                                        *(tf.constant(0.0) for _ in range(self.M)))
        n_g = tf.cast(tf.maximum(e_steps, 1), tf.float32)
        return {"d_loss": d_sum / (n_g * tf.cast(n_critic, tf.float32)),
                "g_loss": tf.stack(g_sums) / n_g, "kl_loss": kl_sum / n_g}

    def _m_step(self, m_steps):
        x = self.draw(m_steps)
        t_w = tf.roll(x["t"], 1, axis=2)
        f, c = self.generate_many(tf.concat([x["t"], t_w], 2), tf.concat([x["eps"], x["eps_w"]], 2),
                                  tf.concat([x["z"], x["z1"]], 2))
        f, fw = tf.split(f, 2, axis=2)  # split before the loop (docs/algorithm.md §10.3)
        c = tf.split(c, 2, axis=2)[0]
        total, = repeat(m_steps, lambda j, total: (total + self.csem_update(f[j], c[j], fw[j]),),
                        tf.zeros([self.M]))
        return {"csem_loss": total / tf.cast(tf.maximum(m_steps, 1), tf.float32)}

    # --- members -------------------------------------------------------------------------

    def member_nets(self, k):
        """Member k's networks (networks.Networks' interface) on views of the stacked weights."""
        return MemberNets(self.layers, self.cfg.embed_dim, self.cfg.z_dim, k)

    def evaluators(self, dataset, ids=None):
        """One evaluation.Evaluator per member (its view of the weights, its own generator) on
        one shared copy of the split (ids: other classes, as eval_split takes them)."""
        texts, q, images, g = eval_split(dataset, ids)
        split = (tf.constant(texts, tf.float32), q, tf.constant(images, tf.float32), g)
        return [Evaluator(split, self.member_nets(k), self.rngs[k], self.cfg.top_k, self.cfg.eval_ks,
                          self.cfg.eval_chunk) for k in range(self.M)]

    def member_variables(self, k):
        """[(member k's standalone variable, the stacked variable holding it)] for the networks
        and the optimizer slots (the sampler and generator are the member's own already)."""
        single, out = self.singles[k], []
        for name, layer in single.nets.layers().items():
            out += [(layer.kernel, self.layers[name].kernel), (layer.bias, self.layers[name].bias)]
        for opt in ("opt_d", "opt_g", "opt_f"):
            out += [(a, b) for (_, a), (_, b) in zip(named_slots(getattr(single, opt)), named_slots(getattr(self, opt)))]
        return out

    def to_single(self, k):
        """Copy member k's weights and slots into its standalone model, to checkpoint it."""
        for single_var, stacked in self.member_variables(k):
            single_var.assign(stacked[k])

    def from_single(self, k):
        """Copy member k's standalone model's weights and slots in (at the start, after a restore)."""
        for single_var, stacked in self.member_variables(k):
            stacked[k].assign(tf.reshape(single_var, stacked.shape[1:]))
