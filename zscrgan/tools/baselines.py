"""`zscrgan baselines`: classic baselines for the same zero-shot retrieval, next to ZSCRGAN and chance.

    python -m zscrgan baselines --dataset NAME [--run_name NAME] [--datasets_dir DIR] [--results_dir DIR]
                                [--logs_dir DIR] [--k K] [--seed 0] [--alpha 1.0] [--cca_dim D] [--max_pairs 2000]

The ridge and CCA baselines and chance are zscrgan.model.baselines'; the ZSCRGAN row re-scores
the run's selected dump at the same K. K and the dataset folder are the run's own (its
config.yml) unless --k and --datasets_dir say otherwise.
"""
import os

import numpy as np

from zscrgan.data.dataset import dataset_folder, eval_split, load_dataset
from zscrgan.errors import ResultsError
from zscrgan.model import baselines
from zscrgan.model.metrics import n_relevant, record_arrays
from zscrgan.results.dumps import load_dump
from zscrgan.results.run import Run
from zscrgan.toolkit.arguments import datasets_dir, positive, run_arguments


def zscrgan_row(path, dataset, k):
    """(Prec@K, mAP@K, note) of a dump of `dataset`'s unseen split, recomputed at K' = min(K, gallery).

    A best-first list's prefix is its top-K, so a dump of the top 50 also gives Prec@10.
    """
    _, q_labels, _, g_labels = eval_split(dataset)
    k = min(k, len(g_labels))
    try:
        q, retrieved = record_arrays(load_dump(path))
    except ResultsError as e:
        return None, None, f"unreadable: {e}"
    if not np.array_equal(q, q_labels):
        return None, None, f"{os.path.basename(path)}: its queries are not this dataset's unseen texts"
    if k > retrieved.shape[1]:
        return None, None, f"{os.path.basename(path)} holds only the top {retrieved.shape[1]}"
    return (*baselines.scores(q_labels, retrieved[:, :k], n_relevant(q_labels, g_labels)), os.path.basename(path))


def format_table(header, rows, k):
    """The comparison as a text table; rows: (method, Prec@K or None, mAP@K or None, note)."""
    width = max(len(r[0]) for r in rows)
    lines = [header, "", f"{'method':<{width}}  {'Prec@' + str(k):>8}  {'mAP@' + str(k):>8}  note"]
    for method, prec, mean_ap, note in rows:
        cells = [f"{v:>8.4f}" if v is not None else f"{'-':>8}" for v in (prec, mean_ap)]
        lines.append(f"{method:<{width}}  {cells[0]}  {cells[1]}  {note}".rstrip())
    return "\n".join(lines)


def add_arguments(p):
    p.description = "Ridge, CCA and chance on a dataset's unseen split, evaluated as ZSCRGAN is, beside a run's dump."
    run_arguments(p)
    p.add_argument("--k", type=positive(int), help="K of Prec@K and mAP@K (default: the run's top_k)")
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of training pairs (default: 0)")
    p.add_argument("--alpha", type=positive(float), default=1.0, help="ridge regularisation (default: 1.0)")
    p.add_argument("--cca_dim", type=positive(int), default=None,
                   help=f"CCA components (default: seen classes - 1, at most {baselines.CCA_DIM_CAP})")
    p.add_argument("--max_pairs", type=positive(int), default=2000,
                   help="training pairs, split equally over the seen classes (default: 2000)")


def main(args):
    run = Run.find(args.dataset, args.run_name, args.logs_dir, args.results_dir)
    dataset = load_dataset(dataset_folder(datasets_dir(args, run.cfg), args.dataset))
    k = args.k or run.top_k
    header, rows = baselines.compare(dataset, k, args.seed, args.alpha, args.cca_dim, args.max_pairs)
    rows = [(r.method, r.prec, r.map, r.note) for r in rows]
    path = run.selected_dump()
    ours = (("ZSCRGAN", None, None, f"no dump in {run.results}") if path is None
            else ("ZSCRGAN (best dump)", *zscrgan_row(path, dataset, k)))
    print(format_table(header, rows[:-1] + [ours] + rows[-1:], k))
    return 0
