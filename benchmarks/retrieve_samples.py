"""What `retrieve --samples S` does to Prec@K, and its spread over noise and training seeds.

    python -m benchmarks.retrieve_samples --logs_dir DIR --runs s0,s1,s2,s3,s4 [--dataset MFEAT]

Each named run (trained before, e.g. `python run_exp.py --dataset MFEAT --epochs 20 --run_name s0
--seed 0 --logs_dir DIR`) is exported (its best checkpoint, to DIR/<run>_export unless there)
and its unseen split retrieved with S = 1, 5, 20 noise draws per query for noise seeds 0-4
(`retrieve --seed`). Prints, per S: the mean Prec@K, the std over noise seeds within a run
(mean over runs) and the std over training seeds of each run's mean (ddof 1).
"""
import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from zscrgan import cli
from zscrgan.model import ranking as search
from zscrgan.toolkit import savedmodel as exported
from zscrgan.data.dataset import dataset_folder, eval_split, load_dataset
from zscrgan.model.metrics import prec_at_k

SAMPLES, NOISE_SEEDS = (1, 5, 20), range(5)


def prec_table(model_dir, split, k):
    """{S: [Prec@k for each noise seed]} of one export."""
    texts, q_labels, images, g_labels = split
    model = exported.Model(model_dir)
    gallery = model.embed_image(images)
    meta = model.meta
    out = {}
    for s in SAMPLES:
        out[s] = []
        for seed in NOISE_SEEDS:
            noise = exported.draw_noise(seed, len(texts), meta["embed_dim"], meta["z_dim"], s)
            rows, _ = search.brute_force(model.embed_queries(texts, *noise), gallery, k)
            out[s].append(prec_at_k(q_labels, g_labels[rows]))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs_dir", required=True)
    parser.add_argument("--runs", required=True, help="run names, comma-separated")
    parser.add_argument("--dataset", default="MFEAT")
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()
    split = eval_split(load_dataset(dataset_folder("datasets", args.dataset)))
    tables = []
    for run in args.runs.split(","):
        model_dir = os.path.join(args.logs_dir, f"{run}_export")
        if not os.path.isdir(model_dir):
            status = cli.main(["--dataset", args.dataset, "--run_name", run, "--logs_dir", args.logs_dir,
                               "--out", model_dir], only="export")
            if status:
                sys.exit(status)
        tables.append(prec_table(model_dir, split, args.k))
        print(run, {s: [round(p, 4) for p in v] for s, v in tables[-1].items()})
    print(f"\n| samples S | mean Prec@{args.k} | std over noise seeds (within a run) | std over training seeds |")
    print("|---|---|---|---|")
    for s in SAMPLES:
        per_run = np.array([t[s] for t in tables])  # (runs, noise seeds)
        print(f"| {s} | {per_run.mean():.4f} | {per_run.std(axis=1, ddof=1).mean():.4f} | "
              f"{per_run.mean(axis=1).std(ddof=1):.4f} |")


if __name__ == "__main__":
    main()
