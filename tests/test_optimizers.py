"""TF1 RMSProp and Adam against updates computed by hand (docs/algorithm.md §4)."""
import numpy as np
import pytest
import tensorflow as tf

from zscrgan.model.optimizers import Adam, RMSProp


def test_rmsprop_matches_tf1_numbers():
    # docs/algorithm.md §10: with g = 0.5 and lr = 2e-4, TF1 moves a weight by -1.04e-4, -1.08e-4, -1.12e-4.
    w = tf.Variable([1.0])
    opt = RMSProp([w], 2e-4)
    moves = []
    for _ in range(3):
        before = w.numpy()[0]
        opt.apply([tf.constant([0.5])], [w])
        moves.append(w.numpy()[0] - before)
    np.testing.assert_allclose(moves, [-1.04e-4, -1.08e-4, -1.12e-4], rtol=1e-2)


def test_rmsprop_by_hand_over_a_gradient_sequence():
    grads = [np.array([0.3, -2.0]), np.array([-0.1, 0.5]), np.array([1e-3, 4.0]), np.array([0.7, 0.0])]
    w = tf.Variable([0.5, -0.25])
    opt = RMSProp([w], 0.01)
    ms, ref = np.ones(2), np.array([0.5, -0.25])
    for g in grads:
        opt.apply([tf.constant(g, tf.float32)], [w])
        ms = 0.9 * ms + 0.1 * g ** 2          # accumulator starts at 1.0
        ref = ref - 0.01 * g / np.sqrt(ms + 1e-10)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-6)
    np.testing.assert_allclose(opt.ms[0].numpy(), ms, rtol=1e-6)


def test_adam_by_hand_over_a_gradient_sequence():
    grads = [np.array([0.3, -2e-8]), np.array([-0.1, 1e-8]), np.array([2.0, -3e-8]), np.array([0.7, 0.0])]
    w = tf.Variable([0.5, -0.25])
    opt = Adam([w], 0.002)
    m, v, ref = np.zeros(2), np.zeros(2), np.array([0.5, -0.25])
    for step, g in enumerate(grads, start=1):
        opt.apply([tf.constant(g, tf.float32)], [w])
        m = 0.5 * m + 0.5 * g
        v = 0.999 * v + 0.001 * g ** 2
        lr_t = 0.002 * np.sqrt(1 - 0.999 ** step) / (1 - 0.5 ** step)
        ref = ref - lr_t * m / (np.sqrt(v) + 1e-8)   # epsilon 1e-8 outside the root
    # The tiny second gradient makes epsilon matter: Keras' 1e-7 would move it visibly less.
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-5)
    keras_like = -0.25 - 0.002 * np.sqrt(1 - 0.999) / 0.5 * (0.5 * -2e-8) / (np.sqrt(0.001 * 4e-16) + 1e-7)
    assert abs(keras_like - ref[1]) > 1e-5


@pytest.mark.parametrize("cls", [RMSProp, Adam])
def test_slots_exist_before_any_step(cls):
    w = tf.Variable(tf.zeros([3, 2]))
    opt = cls([w], 0.1)
    assert len(opt.variables) >= 1 and all(s.shape in ([3, 2], []) for s in opt.variables)
