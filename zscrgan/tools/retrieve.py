"""`zscrgan retrieve MODEL_DIR ...`: rank gallery images for text queries with an export
(docs/algorithm.md §11.4).

    retrieve MODEL_DIR --dataset D                 the dataset's unseen split; Prec@K, mAP@K, a dump
    retrieve MODEL_DIR --queries Q --gallery G --k K --out RANKING.csv
    retrieve MODEL_DIR --gallery G --save_index IDX      embed a gallery once (FAISS) ...
    retrieve MODEL_DIR --queries Q --index IDX --out R.csv   ... and search it
    --seed S | --noise FILE.npz, --samples S, --approximate, --show GRID.png, --map MAP.png

Q and G are .npy arrays (N, T) and (N, I), or .pkl dicts {class id: vectors} as in a dataset
folder (then Prec@K and mAP@K are printed). Every input is checked before anything is
embedded or written.
"""
import dataclasses
import os

import numpy as np

from zscrgan.data.dataset import (DatasetError, class_vectors, dataset_folder, eval_split, load_dataset, load_pickle,
                                  stack)
from zscrgan.data.selection import training_split
from zscrgan.errors import UsageError
from zscrgan.files import atomic_write
from zscrgan.results.dumps import write_dump
from zscrgan.results.run import RETRIEVE, Run
from zscrgan.toolkit.arguments import datasets_dir, datasets_dir_argument, input_file, positive
from zscrgan.toolkit.savedmodel import ExportError, read_meta

RANKING_COLUMNS = "query,rank,gallery_row,gallery_class,score,query_class"


class IndexFileError(ExportError):
    """An index file that is not one, or that another model wrote."""


def add_arguments(parser):
    parser.description = "Rank gallery images for text queries with a model written by `zscrgan export`."
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by `zscrgan export`")
    parser.add_argument("--dataset", metavar="NAME", help="queries and gallery: the dataset's unseen split")
    datasets_dir_argument(parser)
    parser.add_argument("--results_dir", metavar="DIR", help="with --dataset, the dump goes to <DIR>/<NAME>_res/retrieve/ "
                                                            "(default: configs/default.yml's)")
    parser.add_argument("--queries", metavar="Q.npy|Q.pkl", help="text features: an (N, T) array or {class id: vectors}")
    parser.add_argument("--gallery", metavar="G.npy|G.pkl", help="image features: an (N, I) array or {class id: vectors}")
    parser.add_argument("--k", type=positive(int), metavar="K", help="items per query (default: the run's top_k)")
    parser.add_argument("--out", metavar="RANKING.csv", help=f"write {RANKING_COLUMNS}")
    parser.add_argument("--seed", type=int, default=0, help="seeds the query noise as zscrgan.yml says (default 0)")
    parser.add_argument("--noise", metavar="FILE.npz", help="the query noise itself: arrays eps (N, E) and z (N, Z), "
                                                           "or (S, N, E) and (S, N, Z) for S samples")
    parser.add_argument("--samples", type=positive(int), metavar="S",
                        help="average the embeddings of S noise draws per query (default 1, the reference's)")
    parser.add_argument("--save_index", metavar="PATH", help="write the gallery's FAISS index to PATH (.npz)")
    parser.add_argument("--index", metavar="PATH", help="search a gallery saved with --save_index")
    parser.add_argument("--approximate", action="store_true", help="an HNSW index instead of the exact one")
    parser.add_argument("--show", metavar="FILE.png", help="draw a retrieval grid")
    parser.add_argument("--map", metavar="FILE.png", help="draw the common space in 2-D (t-SNE)")


@dataclasses.dataclass
class Inputs:
    """Queries and gallery as arrays; labels None when unknown. texts (Q, T), images (N, I)."""
    texts: np.ndarray
    query_labels: object = None
    images: object = None
    gallery_labels: object = None
    thumbnails: object = None   # {class id: (n, h, w)} or None
    seen: object = None         # (images (M, I), labels (M,)) of the seen classes, for --map
    dataset: object = None      # the Dataset of --dataset


def _load_features(path, what, width):
    """(vectors float32 (N, width), labels (N,) or None) from a .npy array or a .pkl dict."""
    input_file(f"--{what}", path, "an .npy array or a .pkl dict {class id: vectors}")
    if path.endswith(".pkl"):
        x, labels = stack(class_vectors(load_pickle(path), path))
    else:
        try:
            x, labels = np.load(path, allow_pickle=False), None
        except (OSError, ValueError) as e:
            raise UsageError(f"--{what} {path} is not a .npy array or a .pkl dict ({e})")
    if x.ndim != 2 or x.shape[1] != width or not np.issubdtype(x.dtype, np.number):
        raise ExportError(f"--{what} {path}: features must be {width} wide (the model's "
                          f"{'T' if what == 'queries' else 'I'}), got shape {x.shape}")
    if len(x) == 0:
        raise ExportError(f"--{what} {path} holds no vectors (an empty {what})")
    return np.asarray(x, np.float32), labels


def _thumbnails(folder):
    path = os.path.join(folder, "thumbnails.npz")
    if not os.path.isfile(path):
        return None
    with np.load(path, allow_pickle=False) as f:
        return {int(key): f[key] for key in f.files}


def _dataset_inputs(args, meta):
    folder = dataset_folder(datasets_dir(args, meta["config"]), args.dataset)
    ds = load_dataset(folder)
    if (ds.text_dim, ds.image_dim) != (meta["text_dim"], meta["image_dim"]):
        raise ExportError(f"dataset {args.dataset} has features {ds.text_dim} and {ds.image_dim} wide, the model "
                          f"takes {meta['text_dim']} and {meta['image_dim']}")
    texts, q_labels, images, g_labels = eval_split(ds)
    return Inputs(texts, q_labels, images, g_labels, _thumbnails(folder), stack(ds.images, ds.train_ids), ds)


def read_inputs(args, meta):
    """Check the combination of flags and load what they name; Inputs (images None with --index)."""
    if args.dataset and (args.queries or args.gallery):
        raise UsageError("--dataset gives queries and gallery: leave out --queries and --gallery")
    if args.index and (args.gallery or args.save_index or args.approximate):
        raise UsageError("--index is a saved gallery: leave out --gallery, --save_index and --approximate")
    if args.dataset:
        inputs = _dataset_inputs(args, meta)
        if args.index:
            inputs.images = inputs.gallery_labels = None
        return inputs
    if not args.queries and not (args.gallery and args.save_index):
        raise UsageError("give --dataset D, or --queries Q with --gallery G or --index PATH, "
                         "or --gallery G --save_index PATH")
    if not args.gallery and not args.index:
        raise UsageError("--queries needs a gallery: --gallery G or --index PATH")
    texts, q_labels = _load_features(args.queries, "queries", meta["text_dim"]) if args.queries else (None, None)
    images, g_labels = _load_features(args.gallery, "gallery", meta["image_dim"]) if args.gallery else (None, None)
    thumbs = _thumbnails(os.path.dirname(os.path.abspath(args.gallery))) if args.gallery else None
    return Inputs(texts, q_labels, images, g_labels, thumbs)


def read_noise(args, meta, n):
    """(eps (S, n, E), z (S, n, Z)) from --noise, checked, or None to draw them from --seed."""
    if not args.noise:
        return None
    input_file("--noise", args.noise, "an .npz with arrays eps and z")
    E, Z = meta["embed_dim"], meta["z_dim"]
    try:
        with np.load(args.noise, allow_pickle=False) as f:
            eps, z = f["eps"], f["z"]
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"--noise {args.noise}: not an .npz with arrays eps and z ({e})")
    eps, z = (eps[None], z[None]) if eps.ndim == 2 and z.ndim == 2 else (eps, z)
    s = args.samples or len(eps)
    if eps.shape != (s, n, E) or z.shape != (s, n, Z):
        raise ExportError(f"--noise {args.noise}: eps {eps.shape} and z {z.shape} do not fit {n} queries "
                          f"(E = {E}, Z = {Z}, {s} sample{'s' * (s > 1)}): expected ({n}, {E}) and ({n}, {Z})"
                          + (f", or ({s}, {n}, {E}) and ({s}, {n}, {Z})" if s > 1 else ""))
    return eps.astype(np.float32), z.astype(np.float32)


def _check_outputs(args, inputs, labelled):
    for flag in ("out", "save_index", "show", "map"):
        path = getattr(args, flag)
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"--{flag} {path}: the folder {os.path.dirname(os.path.abspath(path))} does not exist")
    if (args.show or args.map) and not labelled:
        raise UsageError("--show and --map need the classes of queries and gallery: --dataset D, or .pkl dicts")
    if args.map and inputs.images is None:
        raise UsageError("--map draws the gallery's embeddings: give --dataset or --gallery, not --index")
    if (args.out or args.show or args.map) and inputs.texts is None:
        raise UsageError("--out, --show and --map need queries (--queries Q)")


def main(args):
    """retrieve: check everything, embed, rank (brute force or FAISS), write what was asked."""
    meta = read_meta(args.model_dir)
    inputs = read_inputs(args, meta)
    gallery_size = len(inputs.images) if inputs.images is not None else None
    index = labels = None
    if args.index:
        index, labels = open_index(args.index, meta)
        gallery_size, inputs.gallery_labels = index.ntotal, (labels if np.all(labels >= 0) else None)
    k = args.k or int(meta["config"]["top_k"])
    if inputs.texts is not None and k > gallery_size:
        raise ExportError(f"--k {k} is larger than the gallery ({gallery_size} items): give --k {gallery_size} or less")
    noise = read_noise(args, meta, len(inputs.texts)) if inputs.texts is not None else None
    labelled = inputs.query_labels is not None and inputs.gallery_labels is not None
    _check_outputs(args, inputs, labelled)
    return _retrieve(args, meta, inputs, index, noise, k, labelled)


def class_kinds(args, meta, loaded=None):
    """{class id: "seen" | "held out" | "unseen"}: what the exported run trained on (its dataset's
    split less the validation classes its config records), or {} when that cannot be read.
    loaded: the Dataset of --dataset, taken when it is the run's own."""
    held = meta["config"].get("val_classes")
    if held is not None and not isinstance(held, list):  # not resolved to ids: which were held out is unknown
        return {}
    try:
        dataset = loaded if loaded is not None and args.dataset == meta["dataset"] else load_dataset(
            dataset_folder(datasets_dir(args, meta["config"]), meta["dataset"]))
    except DatasetError:
        return {}
    trained = training_split(dataset, held).train_ids
    return {**{c: "unseen" for c in dataset.test_ids}, **{c: "held out" for c in held or ()},
            **{c: "seen" for c in trained}}


def model_id(meta):
    """What names a model in an index file: dataset, checkpoint and round."""
    ck = meta["checkpoint"]
    return f"{meta['dataset']} {ck['path']} round {ck['round']}"


def save_index(path, index, labels, model):
    """One .npz file: the serialised FAISS index, gallery classes (N,) (-1: unknown) and the model's id."""
    import faiss
    with open(path, "wb") as f:
        np.savez(f, faiss=faiss.serialize_index(index), labels=np.asarray(labels, np.int64), model=np.array(model))


def open_index(path, meta):
    """(index, gallery labels (N,) with -1 for unknown) from `save_index`'s file, checked against the model."""
    import faiss
    input_file("--index", path, "an index that `retrieve --save_index` wrote")
    try:
        with np.load(path, allow_pickle=False) as f:
            blob, labels, model = f["faiss"], f["labels"], str(f["model"])
    except (OSError, ValueError, KeyError) as e:
        raise IndexFileError(f"--index {path} is not an index that `retrieve --save_index` wrote ({e})")
    if model != model_id(meta):
        raise IndexFileError(f"--index {path} was built with another model ({model}); rebuild it with "
                             "--save_index and this MODEL_DIR")
    index = faiss.deserialize_index(blob)
    if index.d != meta["embed_dim"] or index.ntotal != len(labels):
        raise IndexFileError(f"--index {path} holds {index.ntotal} vectors of width {index.d}, not this model's")
    return index, labels


def _retrieve(args, meta, inputs, index, noise, k, labelled):
    from zscrgan.model import ranking
    from zscrgan.toolkit import savedmodel
    model = savedmodel.Model(args.model_dir, meta)
    gallery = model.embed_image(inputs.images) if inputs.images is not None else None
    if args.save_index or args.approximate:
        index = ranking.build_index(gallery, args.approximate)
    if args.save_index:
        g_labels = inputs.gallery_labels if inputs.gallery_labels is not None else np.full(len(gallery), -1)
        save_index(args.save_index, index, g_labels, model_id(meta))
        print(f"Index of {index.ntotal} gallery items ({'HNSW' if args.approximate else 'exact'}): {args.save_index}")
    if inputs.texts is None:
        return 0
    if noise is None:
        noise = savedmodel.draw_noise(args.seed, len(inputs.texts), meta["embed_dim"], meta["z_dim"], args.samples or 1)
    queries = model.embed_queries(inputs.texts, *noise)
    rows, scores = ranking.search(index, queries, k) if index is not None else ranking.brute_force(queries, gallery, k)
    if labelled:
        _report(args, inputs, rows, k)
    if args.out:
        write_ranking(args.out, rows, scores, inputs.gallery_labels, inputs.query_labels)
        print(f"Ranking: {args.out}")
    if args.show or args.map:
        from zscrgan.toolkit import pictures
        if args.show:
            pictures.grid(args.show, inputs.query_labels, rows, inputs.gallery_labels, inputs.thumbnails)
            print(f"Grid: {args.show}")
        if args.map:
            seen = inputs.seen and (model.embed_image(inputs.seen[0]), inputs.seen[1])
            pictures.tsne_map(args.map, gallery, inputs.gallery_labels, queries, inputs.query_labels, seen,
                              class_kinds(args, meta, inputs.dataset))
            print(f"Map: {args.map}")
    return 0


def _report(args, inputs, rows, k):
    """Print Prec@k and mAP@k; with --dataset, write the dump (docs/algorithm.md §7.4) into
    <results_dir>/<NAME>_res/retrieve/, holding that folder's lock."""
    from zscrgan.model.metrics import dump_records, map_at_k, n_relevant, prec_at_k
    q, retrieved = inputs.query_labels, inputs.gallery_labels[rows]
    prec = prec_at_k(q, retrieved)
    print(f"prec_at_{k} = {prec:.4f}")
    print(f"map_at_{k} = {map_at_k(q, retrieved, n_relevant(q, inputs.gallery_labels)):.4f}")
    if args.dataset:
        run = Run.of({"dataset": args.dataset, "results_dir": args.results_dir})
        folder = run.results_path(RETRIEVE)
        with run.held([folder]):
            print(f"Dump: {write_dump(folder, prec, dump_records(q, retrieved))}")


def write_ranking(path, rows, scores, gallery_labels, query_labels):
    """RANKING.csv (RANKING_COLUMNS): one line per query and rank; rows and queries from 0, rank from 1;
    the classes empty where the inputs had none (arrays)."""
    lines = [RANKING_COLUMNS]
    for q in range(len(rows)):
        q_cls = "" if query_labels is None else int(query_labels[q])
        for r, (row, score) in enumerate(zip(rows[q], scores[q]), 1):
            cls = "" if gallery_labels is None else int(gallery_labels[row])
            lines.append(f"{q},{r},{int(row)},{cls},{score:.9g},{q_cls}")
    atomic_write(path, ("\n".join(lines) + "\n").encode(), "ranking")
