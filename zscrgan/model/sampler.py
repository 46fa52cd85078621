"""The reference's batch sampler (docs/algorithm.md §6), on the device.

The training split lives in device tensors; cursors and the class order are variables,
so a compiled loop draws batches without touching the host and a checkpoint holds the
sampler's whole state.
"""
import numpy as np
import tensorflow as tf


class BatchSampler(tf.Module):
    """Draws (images (B, I), texts (B, T), labels (B,)) from the seen classes.

    Classes: B >= C: every class floor(B/C) times plus B mod C distinct ones, shuffled;
    B < C: the next B classes of the class list, first in trainids.pkl order, reshuffled
    when fewer than B remain (the reference padded with zero rows instead: docs/algorithm.md §9.2).
    Images: per-class round robin, cursor advanced before use. Texts: the class's first.
    """

    def __init__(self, dataset, batch_size, rng):
        super().__init__(name="sampler")
        ids = dataset.train_ids
        counts = np.array([len(dataset.images[c]) for c in ids], np.int32)
        self.batch_size, self.n_classes, self.rng = batch_size, len(ids), rng
        self.class_ids = tf.constant(ids, tf.int64)
        self.images = tf.constant(np.concatenate([dataset.images[c] for c in ids]))
        self.texts = tf.constant(np.stack([dataset.text[c][0] for c in ids]))
        self.counts = tf.constant(counts)
        self.offsets = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32))
        # The first pass follows trainids.pkl, as the reference's (docs/algorithm.md §6). B >= C
        # never reads `order`, but still draws it, so its seeded random stream stays as it was.
        first = tf.range(self.n_classes) if batch_size < self.n_classes else self._permutation(self.n_classes)
        self.order = tf.Variable(first, name="order")
        self.cursor = tf.Variable(0, dtype=tf.int32, name="cursor")
        self.image_cursor = tf.Variable(tf.zeros([self.n_classes], tf.int32), name="image_cursor")

    def _permutation(self, n):
        return tf.argsort(self.rng.uniform([n]), stable=True)

    def _classes(self):
        """Class positions (B,) int32 into the training list."""
        B, C = self.batch_size, self.n_classes
        if B >= C:
            extra = self._permutation(C)[:B % C]
            classes = tf.concat([tf.tile(tf.range(C), [B // C]), extra], 0)
            return tf.gather(classes, self._permutation(B))

        def reshuffle():
            self.order.assign(self._permutation(C))
            self.cursor.assign(0)
            return tf.constant(True)

        tf.cond(self.cursor + B > C, reshuffle, lambda: tf.constant(False))
        classes = tf.gather(self.order, self.cursor + tf.range(B))  # static length, for XLA
        self.cursor.assign_add(B)
        return classes

    def sample(self):
        """One batch: images (B, I) float32, texts (B, T) float32, labels (B,) int64."""
        classes = self._classes()
        onehot = tf.one_hot(classes, self.n_classes, dtype=tf.int32)
        # A class drawn several times in one batch takes successive images.
        rank = tf.reduce_sum(tf.cumsum(onehot, axis=0, exclusive=True) * onehot, axis=1)
        counts = tf.gather(self.counts, classes)
        within = (tf.gather(self.image_cursor, classes) + rank + 1) % counts
        self.image_cursor.assign((self.image_cursor + tf.reduce_sum(onehot, 0)) % self.counts)
        rows = tf.gather(self.offsets, classes) + within
        return (tf.gather(self.images, rows), tf.gather(self.texts, classes),
                tf.gather(self.class_ids, classes))
