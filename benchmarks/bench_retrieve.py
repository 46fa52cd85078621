"""FAISS search of a large gallery: HNSW against the exact index (`retrieve --approximate`).

    python -m benchmarks.bench_retrieve [--n 1000000] [--dim 128] [--queries 1000] [--k 50]

The gallery is synthetic: --n L2-normalised vectors of --dim (128, the demo's embed_dim)
around 1,000 random class centres (normalised centre + N(0, 0.5^2 / dim) per coordinate,
normalised again), queries drawn the same way; ranking by inner product as `retrieve` does.
Prints, side by side: build time, queries/s and recall@K of HNSW (at several efSearch)
against the exact index, whose top K is the ground truth. Both go through
`zscrgan.model.ranking.search` (FAISS candidates re-scored in float64, ties to the lower row),
and the raw faiss search rate is shown beside it. About 6-10 minutes on 2 cores, mostly
the HNSW build.
"""
import argparse
import time

import numpy as np

from zscrgan.model import ranking as search


def clustered(n, dim, centres, rng):
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.5 / np.sqrt(dim), (n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def recall(found, truth):
    """Mean over queries of |found top-K & true top-K| / K."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main():
    import faiss
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gallery = clustered(args.n, args.dim, centres, rng).astype(np.float32)
    queries = clustered(args.queries, args.dim, centres, rng).astype(np.float32)
    print(f"gallery {args.n} x {args.dim}, {args.queries} queries, K = {args.k}, faiss {faiss.__version__}, "
          f"{faiss.omp_get_max_threads()} threads")

    flat, t_flat = timed(lambda: search.build_index(gallery))
    (truth, _), s_flat = timed(lambda: search.search(flat, queries, args.k))
    _, s_raw = timed(lambda: flat.search(queries, args.k))
    hnsw, t_hnsw = timed(lambda: search.build_index(gallery, approximate=True))
    print(f"\n| index | build s | efSearch | queries/s | raw faiss queries/s | recall@{args.k} |")
    print("|---|---|---|---|---|---|")
    print(f"| exact (IndexFlatIP) | {t_flat:.1f} | - | {args.queries / s_flat:.0f} | "
          f"{args.queries / s_raw:.0f} | 1.000 |")
    for ef in (64, 128, 256):
        search.HNSW_EF_SEARCH = ef
        (found, _), s = timed(lambda: search.search(hnsw, queries, args.k))
        hnsw.hnsw.efSearch = ef
        _, s_raw = timed(lambda: hnsw.search(queries, args.k))
        print(f"| HNSW (M {search.HNSW_M}, efConstruction {search.HNSW_EF_CONSTRUCTION}) | "
              f"{t_hnsw:.1f} | {ef} | {args.queries / s:.0f} | {args.queries / s_raw:.0f} | {recall(found, truth):.3f} |")


if __name__ == "__main__":
    main()
