"""The three networks of docs/algorithm.md §2, as plain `tf.Module`s.

Shapes: B batch, T text length, I image length, E embed_dim, Z z_dim.
Layer names (`ca`, `g1`, `g2`, `g3`, `d1`, `d2`, `csem`) are those of the golden vector.
"""
import tensorflow as tf


def lrelu(x):
    """The reference's leaky ReLU, slope 0.2 (Keras 3's LeakyReLU layer defaults to 0.3)."""
    return tf.maximum(x, 0.2 * x)


class Dense(tf.Module):
    """y = x @ kernel + bias; kernel ~ Normal(0, 0.02) (not truncated), bias = 0."""

    def __init__(self, n_in, n_out, rng, name):
        super().__init__(name=name)
        self.kernel = tf.Variable(rng.normal([n_in, n_out], stddev=0.02), name="kernel")
        self.bias = tf.Variable(tf.zeros([n_out]), name="bias")

    def __call__(self, x):
        return tf.matmul(x, self.kernel) + self.bias


class Generator(tf.Module):
    """Conditioning augmentation (CA) + generator G. Variables = the paper's G-vars."""

    def __init__(self, text_dim, image_dim, embed_dim, z_dim, gf_dim, rng):
        super().__init__(name="generator")
        self.text_dim, self.image_dim, self.embed_dim, self.z_dim = text_dim, image_dim, embed_dim, z_dim
        self.ca = Dense(text_dim, 2 * embed_dim, rng, "ca")
        self.g1 = Dense(embed_dim + z_dim, gf_dim, rng, "g1")
        self.g2 = Dense(gf_dim, 2 * gf_dim, rng, "g2")
        self.g3 = Dense(2 * gf_dim, image_dim, rng, "g3")

    def condition(self, t, eps):
        """CA: t (B, T), eps (B, E) ~ TruncatedNormal -> c, mu, log_sigma, each (B, E)."""
        h = lrelu(self.ca(t))
        mu, log_sigma = h[:, :self.embed_dim], h[:, self.embed_dim:]
        return mu + tf.exp(log_sigma) * eps, mu, log_sigma

    def __call__(self, c, z):
        """G: c (B, E), z (B, Z) -> generated image features (B, I), non-negative."""
        x = tf.concat([c, z], axis=1)
        return tf.nn.relu(self.g3(lrelu(self.g2(lrelu(self.g1(x))))))


class Critic(tf.Module):
    """WGAN critic D: (image (B, I), raw text (B, T)) -> score (B, 1), linear."""

    def __init__(self, text_dim, image_dim, df_dim, rng):
        super().__init__(name="critic")
        self.d1 = Dense(image_dim + text_dim, df_dim, rng, "d1")
        self.d2 = Dense(df_dim, 1, rng, "d2")

    def __call__(self, v, t):
        return self.d2(lrelu(self.d1(tf.concat([v, t], axis=1))))


class CSEM(tf.Module):
    """Common Space Embedding Mapper F: image features (B, I) -> common space (B, E)."""

    def __init__(self, image_dim, embed_dim, rng):
        super().__init__(name="csem_mapper")
        self.csem = Dense(image_dim, embed_dim, rng, "csem")

    def __call__(self, v):
        return lrelu(self.csem(v))


class Networks(tf.Module):
    """All three networks, built with weights drawn from `rng` (a tf.random.Generator)."""

    def __init__(self, text_dim, image_dim, embed_dim, z_dim, gf_dim, df_dim, rng):
        super().__init__(name="zscrgan")
        self.generator = Generator(text_dim, image_dim, embed_dim, z_dim, gf_dim, rng)
        self.critic = Critic(text_dim, image_dim, df_dim, rng)
        self.csem = CSEM(image_dim, embed_dim, rng)

    def layers(self):
        """{layer name: Dense}, the golden vector's naming."""
        g, d = self.generator, self.critic
        return {"ca": g.ca, "g1": g.g1, "g2": g.g2, "g3": g.g3, "d1": d.d1, "d2": d.d2,
                "csem": self.csem.csem}
