"""Deterministic synthetic datasets with the shapes of the paper's datasets and of the demo's.

Every class c has a latent vector z_c (length LATENT_DIM). Classes come in groups
(about ten classes a group) whose members share a group centre, so neighbouring classes
are alike, as bird species are. Texts and images are two different views of z_c,
each with its own per-sample noise:

    text  = (z_c + noise * e) @ A                      (T,)   [sigmoid of it for attributes]
    image = relu(tanh((z_c + noise * e') @ B) @ C + b + noise * o)   (I,), non-negative

A, B, C, b are shared by all classes, seen and unseen alike, so a text -> image
relation learnt on the seen classes carries over to the unseen ones (zero-shot
retrieval is learnable); the noise and the grouped classes keep it from being trivial.
At noise 1, a ridge regression from text to image features fitted on the seen classes
reaches Prec@50 of about 0.46 (CUB), 0.57 (FLO) and 0.40 (AWA) on the unseen ones,
where ranking by chance gives 0.02, 0.05 and 0.16.
"""
import dataclasses

import numpy as np

LATENT_DIM = 32
HIDDEN_DIM = 256
CLASSES_PER_GROUP = 10
CLASS_SPREAD = 0.5       # spread of classes around their group centre (group centres have 1)
TEXT_NOISE = 1.2         # per-text latent noise at noise = 1
IMAGE_NOISE = 1.0        # per-image latent noise at noise = 1
PIXEL_NOISE = 0.15       # per-feature image noise at noise = 1
IMAGE_BIAS = -0.1        # shifts the pre-ReLU features so some are exactly zero, as ResNet's are


@dataclasses.dataclass(frozen=True)
class Profile:
    """Shape of one paper dataset."""
    n_classes: int
    n_unseen: int
    text_dim: int
    image_dim: int
    images_per_class: int
    texts_per_class: int
    attributes: bool = False   # texts are attribute vectors in (0, 1), not sentence embeddings


# AWA has about 600 images a class (30k-37k in all); 120 keeps the folder at ~50 MB
# instead of ~250 MB. --images-per-class 600 gives the full size.
PROFILES = {
    "CUB": Profile(200, 50, 1024, 2048, 60, 10),
    "FLO": Profile(102, 20, 1024, 2048, 80, 10),
    "AWA": Profile(50, 10, 85, 2048, 120, 1, attributes=True),
    "MFEAT": Profile(10, 3, 76, 240, 200, 200),  # the bundled demo's shape (datasets/MFEAT)
}


def _counts(rng, mean, n):
    """Per-class sample counts: `mean` +- 20 %, at least 1. Shape (n,)."""
    if mean <= 1:
        return np.full(n, max(mean, 1), np.int64)
    return np.maximum(1, np.round(mean * rng.uniform(0.8, 1.2, n))).astype(np.int64)


def generate(like, seed=0, noise=1.0, images_per_class=None, texts_per_class=None):
    """A synthetic dataset shaped like `like` (a key of PROFILES).

    Returns (text, images, train_ids, test_ids): text {id: (n_c, T) float32},
    images {id: (m_c, I) float32, >= 0}, train_ids / test_ids sorted, disjoint, ids
    0 .. n_classes - 1. The same arguments always give the same arrays.
    """
    p = PROFILES[like]
    n_img = p.images_per_class if images_per_class is None else images_per_class
    n_txt = p.texts_per_class if texts_per_class is None else texts_per_class
    rng = np.random.default_rng(seed)
    f32 = np.float32

    n_groups = max(2, p.n_classes // CLASSES_PER_GROUP)
    centres = rng.standard_normal((n_groups, LATENT_DIM), dtype=f32)
    group = rng.integers(0, n_groups, p.n_classes)
    latent = centres[group] + CLASS_SPREAD * rng.standard_normal((p.n_classes, LATENT_DIM), dtype=f32)

    text_map = rng.standard_normal((LATENT_DIM, p.text_dim), dtype=f32) / np.sqrt(LATENT_DIM)
    img_in = rng.standard_normal((LATENT_DIM, HIDDEN_DIM), dtype=f32) / np.sqrt(LATENT_DIM)
    img_out = rng.standard_normal((HIDDEN_DIM, p.image_dim), dtype=f32) / np.sqrt(HIDDEN_DIM)
    img_bias = IMAGE_BIAS + 0.1 * rng.standard_normal(p.image_dim, dtype=f32)

    test_ids = sorted(rng.choice(p.n_classes, p.n_unseen, replace=False).tolist())
    train_ids = sorted(set(range(p.n_classes)) - set(test_ids))

    txt_counts = _counts(rng, n_txt, p.n_classes)
    img_counts = _counts(rng, n_img, p.n_classes)
    txt_owner = np.repeat(np.arange(p.n_classes), txt_counts)
    img_owner = np.repeat(np.arange(p.n_classes), img_counts)

    u = latent[txt_owner] + f32(noise * TEXT_NOISE) * rng.standard_normal((len(txt_owner), LATENT_DIM), dtype=f32)
    texts = u @ text_map
    if p.attributes:
        texts = 1.0 / (1.0 + np.exp(-2.0 * texts))

    u = latent[img_owner] + f32(noise * IMAGE_NOISE) * rng.standard_normal((len(img_owner), LATENT_DIM), dtype=f32)
    pre = np.tanh(u @ img_in) @ img_out + img_bias
    pre += f32(noise * PIXEL_NOISE) * rng.standard_normal(pre.shape, dtype=f32)
    images = np.maximum(pre, 0, out=pre)

    text = _split(texts.astype(f32), txt_counts)
    image = _split(images.astype(f32, copy=False), img_counts)
    return text, image, train_ids, test_ids


def _split(rows, counts):
    """Stacked rows (sum(counts), d) -> {class id: its rows}."""
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {c: rows[bounds[c]:bounds[c + 1]] for c in range(len(counts))}
