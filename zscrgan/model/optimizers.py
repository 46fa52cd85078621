"""TF1's RMSProp and Adam, which the reference used (docs/algorithm.md §4).

Keras 3's versions differ (RMSProp's accumulator starts at 0, epsilons differ), so these
are written out. Slots are created eagerly with the optimizer, one optimizer per network,
so compiled loops never create variables.
"""
import tensorflow as tf


class RMSProp(tf.Module):
    """TF1 RMSPropOptimizer, no momentum: ms <- ms + (g^2 - ms)(1 - rho); w <- w - lr g / sqrt(ms + eps).

    The accumulator starts at 1.0 and eps sits inside the root, as in TF1.
    """

    def __init__(self, variables, learning_rate, rho=0.9, epsilon=1e-10, name="rmsprop"):
        super().__init__(name=name)
        self.lr, self.rho, self.epsilon = learning_rate, rho, epsilon
        self.ms = [tf.Variable(tf.ones_like(v), trainable=False, name="ms") for v in variables]

    def apply(self, grads, variables):
        for g, v, ms in zip(grads, variables, self.ms):
            ms.assign_add((tf.square(g) - ms) * (1.0 - self.rho))
            v.assign_sub(g * self.lr / tf.sqrt(ms + self.epsilon))


class Adam(tf.Module):
    """TF1 AdamOptimizer: step size lr sqrt(1 - beta2^t) / (1 - beta1^t), update m / (sqrt(v) + eps)."""

    def __init__(self, variables, learning_rate, beta1=0.5, beta2=0.999, epsilon=1e-8, name="adam"):
        super().__init__(name=name)
        self.lr, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]
        # TF1 keeps beta^t as running products, updated after each step.
        self.beta1_power = tf.Variable(beta1, dtype=tf.float32, trainable=False, name="beta1_power")
        self.beta2_power = tf.Variable(beta2, dtype=tf.float32, trainable=False, name="beta2_power")

    def apply(self, grads, variables):
        lr_t = self.lr * tf.sqrt(1.0 - self.beta2_power) / (1.0 - self.beta1_power)
        for g, var, m, v in zip(grads, variables, self.m, self.v):
            m.assign_add((g - m) * (1.0 - self.beta1))
            v.assign_add((tf.square(g) - v) * (1.0 - self.beta2))
            var.assign_sub(lr_t * m / (tf.sqrt(v) + self.epsilon))
        self.beta1_power.assign(self.beta1_power * self.beta1)
        self.beta2_power.assign(self.beta2_power * self.beta2)
