"""Evaluation at scale: chunked top-K against the reference's per-query Python sort.

    python benchmarks/bench_eval.py [--case a|b|both]

(a) 30,000 queries x 3,000 gallery images at CUB's dimensions (every caption of the unseen
    classes): the project's evaluation (embed queries through CA, G and F in chunks, embed
    the gallery, chunked top-K), side by side with the reference's way (the same embeddings,
    then a Python sort of the whole gallery for every query; timed on --sample_queries and
    scaled) and a full-matrix NumPy ranking; and the arithmetic floor (the FLOPs at the same
    run's batch-32 matmul rate).
(b) 10,000 queries x 200,000 gallery images of 2048-d: the full similarity matrix alone
    would take 8 GB. Runs in a child process so its peak resident memory (inputs included)
    is its own.
Networks have the reference's dimensions with fresh weights (speed does not depend on them).
Prints a table and one JSON line.
"""
import argparse
import json
import subprocess
import sys
import time

from common import batch32_shapes, eval_flops, matmul_rate, np, peak_rss_gb, tf
from zscrgan.config import load_config
from zscrgan.evaluation import l2_normalize, rank
from zscrgan.networks import Networks


def paper_networks(T=1024, I=2048):
    cfg = load_config(flags={"dataset": "CUB"})
    nets = Networks(T, I, cfg.embed_dim, cfg.z_dim, cfg.gf_dim, cfg.df_dim,
                    tf.random.Generator.from_seed(0))
    return cfg, nets


def embedders(cfg, nets):
    """The evaluation's query and gallery embeddings, compiled (as Evaluator's)."""
    rng = tf.random.Generator.from_seed(1)

    @tf.function
    def queries(t):
        n = tf.shape(t)[0]
        c, _, _ = nets.generator.condition(t, rng.truncated_normal([n, cfg.embed_dim]))
        return l2_normalize(nets.csem(nets.generator(c, rng.normal([n, cfg.z_dim]))))

    @tf.function
    def gallery(v):
        return l2_normalize(nets.csem(v))

    return queries, gallery


def chunked(fn, x, chunk):
    return tf.concat([fn(x[i:i + chunk]) for i in range(0, int(x.shape[0]), chunk)], 0)


def project_eval(q_fn, g_fn, texts, images, k, chunk):
    queries = chunked(q_fn, texts, chunk)
    n = int(images.shape[0])
    return rank(queries, (g_fn(images[i:i + chunk]) for i in range(0, n, chunk)), k)


def python_sort(q, g, k):
    """The reference's ranking: each query's whole gallery sorted in Python."""
    out = []
    for row in q:
        sims = list(np.dot(g, row))
        order = sorted(range(len(sims)), key=lambda j: sims[j], reverse=True)
        out.append(order[:k])
    return out


def case_a(args):
    cfg, nets = paper_networks()
    q_fn, g_fn = embedders(cfg, nets)
    Q, N, k = 30000, 3000, cfg.top_k
    texts = tf.random.normal([Q, 1024])
    images = tf.nn.relu(tf.random.normal([N, 2048]))
    project_eval(q_fn, g_fn, texts[:2048], images, k, cfg.eval_chunk)  # compile
    rate = matmul_rate(batch32_shapes(cfg))
    t0 = time.perf_counter()
    project_eval(q_fn, g_fn, texts, images, k, cfg.eval_chunk)
    ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    q = chunked(q_fn, texts, cfg.eval_chunk).numpy()
    g = chunked(g_fn, images, cfg.eval_chunk).numpy()
    embed_s = time.perf_counter() - t0
    s = args.sample_queries
    t0 = time.perf_counter()
    python_sort(q[:s], g, k)
    sort_s = (time.perf_counter() - t0) * Q / s
    t0 = time.perf_counter()
    np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :k]
    numpy_s = time.perf_counter() - t0
    floor = eval_flops(cfg, 1024, 2048, Q, N) / (rate * 1e9)
    rows = {"project (chunked top-K)": ours, "reference (Python sort per query)": embed_s + sort_s,
            "full-matrix NumPy argsort": embed_s + numpy_s}
    print(f"\n(a) {Q} queries x {N} gallery, paper dimensions; batch-32 matmul rate {rate:.1f} GFLOP/s; "
          f"arithmetic floor {floor:.2f} s")
    print(f"  {'method':<36}{'seconds':>9}{'/floor':>8}{'/project':>10}")
    for name, sec in rows.items():
        print(f"  {name:<36}{sec:>9.2f}{sec / floor:>8.2f}{sec / ours:>10.2f}")
    print(f"  (the reference's sort timed on {s} queries and scaled; embeddings {embed_s:.2f} s of it)")
    return {"case": "a", "queries": Q, "gallery": N, "floor_s": floor, "matmul_gflops": rate,
            **{name: sec for name, sec in rows.items()}}


def case_b_child():
    cfg, nets = paper_networks()
    q_fn, g_fn = embedders(cfg, nets)
    Q, N = 10000, 200000
    texts = tf.random.normal([Q, 1024])
    images = tf.random.uniform([N, 2048])                   # 1.6 GB: the input, made in place
    t0 = time.perf_counter()
    idx = project_eval(q_fn, g_fn, texts, images, cfg.top_k, cfg.eval_chunk)
    sec = time.perf_counter() - t0
    print(json.dumps({"seconds": sec, "peak_rss_gb": peak_rss_gb(), "shape": list(idx.shape)}))


def case_b():
    out = subprocess.run([sys.executable, __file__, "--child_b"], capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    full = 10000 * 200000 * 4 / 1e9
    print(f"\n(b) 10000 queries x 200000 gallery of 2048-d: {result['seconds']:.1f} s, peak resident memory "
          f"{result['peak_rss_gb']:.2f} GB with the 1.64 GB gallery input (the full similarity matrix alone: {full:.0f} GB)")
    return {"case": "b", **result}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="both", choices=["a", "b", "both"])
    parser.add_argument("--sample_queries", type=int, default=1000)
    parser.add_argument("--child_b", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_b:
        return case_b_child()
    results = []
    if args.case in ("a", "both"):
        results.append(case_a(args))
    if args.case in ("b", "both"):
        results.append(case_b())
    print(json.dumps({"bench": "eval", "results": results}))


if __name__ == "__main__":
    main()
