"""The losses of docs/algorithm.md §2-3, as small pure functions of tensors.

Shapes: B batch, E embed_dim, I image length. Scores from the critic are (B, 1).
"""
import tensorflow as tf

from zscrgan.model.ranking import l2_normalize


def _kl_part(a, b):
    """K(a, b) = mean of [-b + 0.5 * (-1 + exp(2b) + a^2)] over all elements."""
    return tf.reduce_mean(-b + 0.5 * (-1.0 + tf.exp(2.0 * b) + tf.square(a)))


def kl_loss(mu, log_sigma):
    """The reference's KL term for conditioning augmentation (docs/algorithm.md §2), kept as is.

    mu, log_sigma: (B, E) -> scalar.
    """
    m = (mu + log_sigma) / 2.0
    return 0.5 * (_kl_part(mu, m) + _kl_part(log_sigma, m))


def critic_loss(d_fake, d_wrong, d_real):
    """L_D = (mean D(f, t) + mean D(v_w, t)) / 2 - mean D(v, t); each argument (B, 1)."""
    return (tf.reduce_mean(d_fake) + tf.reduce_mean(d_wrong)) / 2.0 - tf.reduce_mean(d_real)


def margin_term(f, v, v_wrong, margin):
    """mm = mean |f - v|_1 - mean |f - v_w|_1 + margin; no hinge (docs/algorithm.md §9.4)."""
    l1 = lambda a, b: tf.reduce_mean(tf.reduce_sum(tf.abs(a - b), axis=1))
    return l1(f, v) - l1(f, v_wrong) + margin


def csem_loss(f_embed, c, fw_embed):
    """L_C = log(1 + exp(mean <aw, b> - mean <a, b>)), the means inside the log.

    f_embed = F(f), fw_embed = F(fw), c = the condition c1: each (B, E).
    """
    a, b, aw = l2_normalize(f_embed), l2_normalize(c), l2_normalize(fw_embed)
    pos = tf.reduce_mean(tf.reduce_sum(a * b, axis=1))
    neg = tf.reduce_mean(tf.reduce_sum(aw * b, axis=1))
    return tf.math.log(1.0 + tf.exp(neg - pos))


def generator_loss(d_fake, l_csem, mm, kl1, kl2, mm_reg_coeff, kl_div_coefficient):
    """L_G = -mean D(f, t) + L_C + mm_reg_coeff * mm + kl_div_coefficient * (kl1 + kl2) / 2."""
    return (-tf.reduce_mean(d_fake) + l_csem + mm_reg_coeff * mm
            + kl_div_coefficient * (kl1 + kl2) / 2.0)
