"""Shared pieces of the benchmarks: the machine's matmul rate, FLOP counts, memory.

Benchmarks run from the repository's root as modules, `python -m benchmarks.bench_train`, so
`zscrgan` is imported from the clone (or from the installed package) without path edits.
"""
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from zscrgan.run import compile_cache  # noqa: E402

compile_cache.enable()  # as every run does, before TensorFlow starts
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def matmul_rate(shapes, bursts=5, reps=20):
    """Best float32 GFLOP/s over `bursts` bursts of `reps` products per (m, k, n) shape."""
    best = 0.0
    for m, k, n in shapes:
        a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
        tf.matmul(a, b).numpy()
        for _ in range(bursts):
            t0 = time.perf_counter()
            for _ in range(reps):
                out = tf.matmul(a, b)
            out.numpy()
            best = max(best, 2.0 * m * k * n * reps / (time.perf_counter() - t0) / 1e9)
    return best


def batch32_shapes(cfg):
    """The generator's batch-32 product shapes (m, k, n): its two big layers."""
    return [(32, cfg.gf_dim, 2 * cfg.gf_dim), (32, 2 * cfg.gf_dim, cfg.gf_dim)]


def per_row_flops(cfg, T, I):
    """Forward FLOPs per row of CA + G, of the critic D and of the CSEM F."""
    E, Z, g, d = cfg.embed_dim, cfg.z_dim, cfg.gf_dim, cfg.df_dim
    ca_g = 2 * (T * 2 * E + (E + Z) * g + g * 2 * g + 2 * g * I)
    return ca_g, 2 * ((I + T) * d + d), 2 * I * E


def round_flops(cfg, T, I):
    """FLOPs of one round's updates (docs/algorithm.md §5); backward counted as 2x forward,
    except where only weight gradients are needed (1x)."""
    B = cfg.batch_size
    gen, dis, csem = per_row_flops(cfg, T, I)
    critic = B * gen + 2 * (3 * B * dis)                      # G forward; D fwd + weight grads
    generator = 3 * (2 * B * gen + B * dis + 2 * B * csem)    # fwd + full backward
    csem_update = 2 * B * gen + 2 * (2 * B * csem)            # G forward; F fwd + weight grads
    e_step = cfg.e_steps * (cfg.n_critic * critic + generator)
    return e_step, cfg.m_steps * csem_update


def eval_flops(cfg, T, I, n_queries, n_gallery):
    gen, _, csem = per_row_flops(cfg, T, I)
    return n_queries * (gen + csem) + n_gallery * csem + 2 * n_queries * n_gallery * cfg.embed_dim


def peak_rss_gb():
    """Peak resident memory of this process so far, GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def median(xs):
    return float(np.median(xs))
