"""ZSCRGAN's EM training (docs/algorithm.md §3-5): the updates and the compiled E- and M-steps.

One update = one batch and one optimizer step; `e_step` and `m_step` each run a whole step
of a round inside one compiled call, drawing batches and noise on the device.
Shapes: B batch, T text, I image, E embed_dim, Z z_dim.
"""
import tensorflow as tf

from zscrgan.model import losses
from zscrgan.model.networks import Networks
from zscrgan.model.optimizers import Adam, RMSProp
from zscrgan.model.sampler import BatchSampler


# Config keys the traced steps do not read. seed acts through the initial values, val_classes
# through the data; the others name files, tell the loop when to stop and what to select, or
# list the seeds of a group (each member is built with its own seed). Every other key may shape
# the graphs.
VALUE_ONLY = ("seed", "seeds", "val_classes", "run_name", "logs_dir", "results_dir", "datasets_dir",
              "epochs", "patience", "select")


def graph_settings(cfg):
    """The config's keys that the traced steps may read: a sorted tuple of (key, value text)."""
    return tuple(sorted((k, repr(v)) for k, v in cfg.items() if k not in VALUE_ONLY))


def step_counts(cfg):
    """(e_steps, n_critic, m_steps) as scalar tensors, the steps' arguments: a round passes the
    same tensors, so it never retraces (docs/algorithm.md §10.3)."""
    return tf.constant(cfg.e_steps), tf.constant(cfg.n_critic), tf.constant(cfg.m_steps)


def repeat(n, body, *values):
    """`for i in range(n): values = body(i, *values)` inside a compiled step, as one
    tf.while_loop; returns the final values (a tuple).

    The unused tf.range(n) keeps what autograph's `for i in tf.range(n)` gave: XLA takes n as
    a compile-time constant (so the steps divide their loss sums by constants), and the
    kernels compile to the same HLO as before, number for number.
    """
    def step(i, *values):
        values = body(i, *values)
        return (i + 1, *values)

    tf.range(n)
    return tf.while_loop(lambda i, *_: i < n, step, (tf.constant(0), *values), maximum_iterations=n)[1:]


class ZSCRGAN(tf.Module):
    """Networks, their optimizers, the batch sampler and the random generator of one run."""

    def __init__(self, cfg, text_dim, image_dim, dataset=None, rng=None):
        super().__init__(name="zscrgan_model")
        self.cfg = cfg
        self.rng = rng if rng is not None else tf.random.Generator.from_seed(cfg.seed)
        self.nets = Networks(text_dim, image_dim, cfg.embed_dim, cfg.z_dim, cfg.gf_dim,
                             cfg.df_dim, self.rng)
        G, D, F = self.nets.generator, self.nets.critic, self.nets.csem
        self.g_vars, self.d_vars, self.f_vars = (G.trainable_variables, D.trainable_variables,
                                                 F.trainable_variables)
        self.opt_d = RMSProp(self.d_vars, cfg.discriminator_lr, name="critic_rmsprop")
        self.opt_g = RMSProp(self.g_vars, cfg.generator_lr, name="generator_rmsprop")
        self.opt_f = Adam(self.f_vars, cfg.CSEM_lr, name="csem_adam")
        self.sampler = BatchSampler(dataset, cfg.batch_size, self.rng) if dataset else None
        self.new_steps()

    def new_steps(self):
        """(Re)make the compiled `e_step` and `m_step`: traced at their next call, then compiled
        or loaded from XLA's compile cache (zscrgan/run/compile_cache.py)."""
        # Without autograph (the loops are written out with `repeat`): converting the ~90
        # functions the steps call was most of their tracing time, in every process.
        self.e_step = tf.function(self._e_step, jit_compile=self.cfg.jit_compile, autograph=False)
        self.m_step = tf.function(self._m_step, jit_compile=self.cfg.jit_compile, autograph=False)

    # --- one batch -------------------------------------------------------------------

    def generate(self, t, eps, z):
        """CA then G: t (B, T) -> f (B, I), c (B, E), mu (B, E), log_sigma (B, E)."""
        c, mu, log_sigma = self.nets.generator.condition(t, eps)
        return self.nets.generator(c, z), c, mu, log_sigma

    def losses(self, v, t, eps, eps_w, z, z1):
        """All losses of docs/algorithm.md §3 for one batch; v (B, I), t (B, T).

        Returns {d_loss, g_loss, csem_loss, kl_loss, mm}, each a scalar.
        """
        out, f = self._generator_losses(v, t, eps, eps_w, z, z1)
        d_loss = losses.critic_loss(*self.critic_scores(f, tf.roll(v, 1, axis=0), v, t))
        return {"d_loss": d_loss, **out}

    def _generator_losses(self, v, t, eps, eps_w, z, z1):
        """What the G step needs: ({g_loss, csem_loss, kl_loss, mm}, f (B, I)).

        The real and the wrong branch go through CA, G and F as one 2B-row pass (the same
        numbers as two passes, in shapes that run faster).
        """
        cfg, F = self.cfg, self.nets.csem
        v_w, t_w = tf.roll(v, 1, axis=0), tf.roll(t, 1, axis=0)
        both, c, mu, s = self.generate(tf.concat([t, t_w], 0), tf.concat([eps, eps_w], 0),
                                       tf.concat([z, z1], 0))
        f, fw = tf.split(both, 2)
        f_embed, fw_embed = tf.split(F(both), 2)
        c1 = tf.split(c, 2)[0]
        (mu1, mu2), (s1, s2) = tf.split(mu, 2), tf.split(s, 2)
        l_c = losses.csem_loss(f_embed, c1, fw_embed)
        mm = losses.margin_term(f, v, v_w, cfg.margin)
        kl1, kl2 = losses.kl_loss(mu1, s1), losses.kl_loss(mu2, s2)
        g_loss = losses.generator_loss(self.nets.critic(f, t), l_c, mm, kl1, kl2,
                                       cfg.mm_reg_coeff, cfg.kl_div_coefficient)
        return {"g_loss": g_loss, "csem_loss": l_c, "kl_loss": (kl1 + kl2) / 2.0, "mm": mm}, f

    def critic_scores(self, f, v_w, v, t):
        """D(f, t), D(v_w, t), D(v, t), each (B, 1), from one 3B-row pass."""
        scores = self.nets.critic(tf.concat([f, v_w, v], 0), tf.concat([t, t, t], 0))
        return tf.split(scores, 3)

    # --- the three updates (docs/algorithm.md §4) ---------------------------------------

    def critic_update(self, v, t, f):
        """One RMSProp step on L_D over the critic, then clip every critic variable.

        f (B, I): G's output for this batch (G is fixed during critic updates).
        Returns L_D before the step.
        """
        with tf.GradientTape() as tape:
            d_loss = losses.critic_loss(*self.critic_scores(f, tf.roll(v, 1, axis=0), v, t))
        self.opt_d.apply(tape.gradient(d_loss, self.d_vars), self.d_vars)
        for var in self.d_vars:
            var.assign(tf.clip_by_value(var, -self.cfg.clip_val, self.cfg.clip_val))
        return d_loss

    def generator_update(self, v, t, eps, eps_w, z, z1):
        """One RMSProp step on L_G over CA + G. Returns the losses before the step."""
        with tf.GradientTape() as tape:
            out, _ = self._generator_losses(v, t, eps, eps_w, z, z1)
        self.opt_g.apply(tape.gradient(out["g_loss"], self.g_vars), self.g_vars)
        return out

    def csem_update(self, f, c, fw):
        """One Adam step on L_C over the CSEM; f, fw (B, I) and c (B, E) from the fixed G."""
        with tf.GradientTape() as tape:
            f_embed, fw_embed = tf.split(self.nets.csem(tf.concat([f, fw], 0)), 2)
            l_c = losses.csem_loss(f_embed, c, fw_embed)
        self.opt_f.apply(tape.gradient(l_c, self.f_vars), self.f_vars)
        return l_c

    # --- compiled steps (docs/algorithm.md §5) ------------------------------------------

    def draw(self, n):
        """n batches and their noise, in sampling order: a dict of (n, B, ...) tensors.

        Keys: v (images), t (first texts), eps, eps_w (B, E), z, z1 (B, Z).
        """
        B, E, Z = self.cfg.batch_size, self.cfg.embed_dim, self.cfg.z_dim
        vs = tf.TensorArray(tf.float32, size=n, element_shape=[B, self.sampler.images.shape[1]])
        ts = tf.TensorArray(tf.float32, size=n, element_shape=[B, self.sampler.texts.shape[1]])

        def one_batch(i, ts, vs):
            v, t, _ = self.sampler.sample()
            return ts.write(i, t), vs.write(i, v)

        ts, vs = repeat(n, one_batch, ts, vs)
        return {"v": vs.stack(), "t": ts.stack(),
                "eps": self.rng.truncated_normal([n, B, E]), "eps_w": self.rng.truncated_normal([n, B, E]),
                "z": self.rng.normal([n, B, Z]), "z1": self.rng.normal([n, B, Z])}

    def generate_many(self, t, eps, z):
        """`generate` over n batches at once: t (n, B, T) -> f (n, B, I), c (n, B, E)."""
        n, B = tf.shape(t)[0], tf.shape(t)[1]
        flat = lambda x: tf.reshape(x, [n * B, -1])
        f, c, _, _ = self.generate(flat(t), flat(eps), flat(z))
        return tf.reshape(f, [n, B, -1]), tf.reshape(c, [n, B, -1])

    def _e_step(self, e_steps, n_critic):
        """e_steps x (n_critic critic updates, 1 generator update); returns mean losses.

        G is fixed during an iteration's critic updates, so their n_critic generator
        passes run as one (n_critic x B)-row pass.
        """
        def iteration(i, d_sum, g_sum, kl_sum):
            x = self.draw(n_critic)
            f, _ = self.generate_many(x["t"], x["eps"], x["z"])
            critic = lambda j, d_sum: (d_sum + self.critic_update(x["v"][j], x["t"][j], f[j]),)
            d_sum, = repeat(n_critic, critic, d_sum)
            x = self.draw(1)
            out = self.generator_update(*(x[k][0] for k in ("v", "t", "eps", "eps_w", "z", "z1")))
            return d_sum, g_sum + out["g_loss"], kl_sum + out["kl_loss"]

        d_sum, g_sum, kl_sum = repeat(e_steps, iteration, tf.constant(0.0), tf.constant(0.0), tf.constant(0.0))
        n_g = tf.cast(tf.maximum(e_steps, 1), tf.float32)
        return {"d_loss": d_sum / (n_g * tf.cast(n_critic, tf.float32)),
                "g_loss": g_sum / n_g, "kl_loss": kl_sum / n_g}

    def _m_step(self, m_steps):
        """m_steps CSEM updates; returns the mean CSEM loss.

        G is fixed for the whole M-step, so all its generator passes run as one.
        """
        x = self.draw(m_steps)
        t_w = tf.roll(x["t"], 1, axis=1)
        f, c = self.generate_many(tf.concat([x["t"], t_w], 1), tf.concat([x["eps"], x["eps_w"]], 1),
                                  tf.concat([x["z"], x["z1"]], 1))
        # Split before the loop: XLA on CPU (TF 2.21) reads f[j, :B] and f[j, B:] inside a
        # while loop as the same rows; indexing only the leading axis is read correctly.
        f, fw = tf.split(f, 2, axis=1)
        c = tf.split(c, 2, axis=1)[0]
        total, = repeat(m_steps, lambda j, total: (total + self.csem_update(f[j], c[j], fw[j]),), tf.constant(0.0))
        return {"csem_loss": total / tf.cast(tf.maximum(m_steps, 1), tf.float32)}
