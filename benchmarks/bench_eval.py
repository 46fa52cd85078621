"""Evaluation at scale: chunked top-K against the reference's per-query Python sort.

    python -m benchmarks.bench_eval [--case a|b|both]

(a) 30,000 queries x 3,000 gallery images at CUB's dimensions (every caption of the unseen
    classes): the project's Evaluator.evaluate (queries through CA, G and F in chunks, gallery
    blocks, a running top-K, metrics and dump records), side by side with the reference's way (the same embeddings,
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

from benchmarks.common import batch32_shapes, eval_flops, matmul_rate, np, peak_rss_gb, tf
from zscrgan.config import load_config
from zscrgan.model.evaluation import Evaluator
from zscrgan.model.networks import Networks


def paper_evaluator(n_queries, n_gallery, n_classes):
    """The project's Evaluator with paper-dimension networks (fresh weights: speed does not
    depend on them) on random unseen data made in place, as tensors."""
    cfg = load_config(flags={"dataset": "CUB"})
    rng = tf.random.Generator.from_seed(0)
    nets = Networks(1024, 2048, cfg.embed_dim, cfg.z_dim, cfg.gf_dim, cfg.df_dim, rng)
    split = (tf.random.normal([n_queries, 1024]), np.arange(n_queries) % n_classes,
             tf.random.uniform([n_gallery, 2048]), np.arange(n_gallery) % n_classes)
    return cfg, Evaluator(split, nets, rng, cfg.top_k, (), cfg.eval_chunk)


def python_sort(q, g, k):
    """The reference's ranking: each query's whole gallery sorted in Python."""
    out = []
    for row in q:
        sims = list(np.dot(g, row))
        order = sorted(range(len(sims)), key=lambda j: sims[j], reverse=True)
        out.append(order[:k])
    return out


def case_a(args):
    Q, N = 30000, 3000
    cfg, evaluator = paper_evaluator(Q, N, n_classes=50)
    k = cfg.top_k
    evaluator.evaluate()  # compile
    rate = matmul_rate(batch32_shapes(cfg))
    t0 = time.perf_counter()
    evaluator.evaluate()
    ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    q = evaluator.embed_queries().numpy()
    g = np.concatenate([block.numpy() for block in evaluator.gallery_blocks()])
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
    _, evaluator = paper_evaluator(10000, 200000, n_classes=1000)   # a 1.6 GB gallery input
    t0 = time.perf_counter()
    metrics, records = evaluator.evaluate()
    sec = time.perf_counter() - t0
    print(json.dumps({"seconds": sec, "peak_rss_gb": peak_rss_gb(), "queries": len(records)}))


def case_b():
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_eval", "--child_b"], capture_output=True, text=True)
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
