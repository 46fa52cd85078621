"""`zscrgan prepare`: write a native dataset folder (docs/algorithm.md §1) from other formats, or check one.

    python -m zscrgan prepare gbu --res101 res101.mat --att-splits att_splits.mat --out datasets/AWA2
    python -m zscrgan prepare arrays --images X.npy --image-labels y.npy --texts T.npy \\
        --text-labels t.npy --unseen 3,7,9 [--val 1,4] --out datasets/MINE
    python -m zscrgan prepare synthetic --like CUB --out datasets/SYN_CUB
    python -m zscrgan prepare check datasets/CUB

The converters and the writer are zscrgan.data.converters'; bad input is one line on stderr
and exit status 2.
"""
import os

import numpy as np

from zscrgan.data import converters, synthetic
from zscrgan.data.dataset import DatasetError, load_dataset, load_val_ids


def add_arguments(p):
    p.description = "Write a native dataset folder (four pickles) from other formats, or check one."
    sub = p.add_subparsers(dest="command", required=True, metavar="{gbu,arrays,synthetic,check}")

    def out_args(s):
        s.add_argument("--out", required=True, help="dataset folder to write; its name is the --dataset name")
        s.add_argument("--force", action="store_true", help="replace --out if it already holds a dataset")

    g = sub.add_parser("gbu", help="xlsa17 / 'GBU' files (AWA1, AWA2, CUB, SUN, APY, FLO)")
    g.add_argument("--res101", required=True, help="res101.mat: features (dim x images), labels (1-based)")
    g.add_argument("--att-splits", required=True, help="att_splits.mat: att / original_att, *_loc splits")
    g.add_argument("--semantic", choices=("att", "original_att"), default="att",
                   help="class vector used as the text embedding (default: att)")
    g.add_argument("--text-embeddings", metavar="FILE.npz",
                   help="several text embeddings a class instead: arrays texts (M x T), labels (M, 1-based)")
    out_args(g)

    a = sub.add_parser("arrays", help="your own feature arrays (.npy, .npz, .npz:KEY or .csv)")
    a.add_argument("--images", required=True, help="image features, images x dim")
    a.add_argument("--image-labels", required=True, help="class id of each image row")
    a.add_argument("--texts", required=True, help="text embeddings, texts x dim")
    a.add_argument("--text-labels", required=True, help="class id of each text row")
    a.add_argument("--unseen", required=True, help="unseen (test) class ids, comma-separated: 3,7,9")
    a.add_argument("--seen", help="seen (train) class ids; default: every other class")
    a.add_argument("--val", help="seen class ids a run may hold out as validation classes "
                                 "(valids.pkl; run_exp.py --val_classes file)")
    out_args(a)

    s = sub.add_parser("synthetic", help="a deterministic synthetic dataset shaped like a paper dataset")
    s.add_argument("--like", required=True, choices=sorted(synthetic.PROFILES))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--noise", type=float, default=1.0, help="scales all per-sample noise (default 1.0)")
    s.add_argument("--images-per-class", type=int, help="mean images a class (default: the profile's)")
    s.add_argument("--texts-per-class", type=int, help="mean texts a class (default: the profile's)")
    out_args(s)

    c = sub.add_parser("check", help="validate a dataset folder (and its valids.pkl, if any) and "
                                     "summarise it (exit 2 if invalid)")
    c.add_argument("folder")


def _convert(args):
    if args.command == "gbu":
        return converters.convert_gbu(args.res101, args.att_splits, args.semantic, args.text_embeddings)
    if args.command == "arrays":
        unseen = converters.id_list(args.unseen, "--unseen")
        seen = converters.id_list(args.seen, "--seen") if args.seen else None
        val = converters.id_list(args.val, "--val") if args.val else None
        arrays = [converters.read_array(getattr(args, flag.replace("-", "_")), f"--{flag}")
                  for flag in ("images", "image-labels", "texts", "text-labels")]
        return converters.convert_arrays(*arrays, unseen, seen, val)
    if not (args.noise >= 0 and np.isfinite(args.noise)):
        raise DatasetError(f"--noise must be a number >= 0, got {args.noise}")
    for flag in ("images_per_class", "texts_per_class"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise DatasetError(f"--{flag.replace('_', '-')} must be at least 1")
    return (*synthetic.generate(args.like, args.seed, args.noise, args.images_per_class, args.texts_per_class),
            None, [])


def main(args):
    try:
        if args.command == "check":
            dataset = load_dataset(args.folder)
            print(converters.summary(dataset, args.folder, load_val_ids(args.folder, dataset.train_ids)))
            return 0
        converters.check_out(args.out, args.force)
        text, images, train_ids, test_ids, val_ids, notes = _convert(args)
        dataset = converters.write_dataset(args.out, text, images, train_ids, test_ids, args.force, val_ids)
    except DatasetError as e:
        raise DatasetError(f"prepare {args.command}: {e}")
    print(converters.summary(dataset, f"wrote {args.out}", val_ids))
    for note in notes:
        print(f"  note: {note}")
    parent = os.path.dirname(os.path.normpath(args.out)) or "."
    flag = "" if os.path.abspath(parent) == os.path.abspath("datasets") else f" --datasets_dir {parent}"
    print(f"train with: python run_exp.py --dataset {os.path.basename(os.path.normpath(args.out))}{flag}")
    return 0

