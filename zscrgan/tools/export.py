"""`zscrgan export`: write a run's checkpoint as a TensorFlow SavedModel (docs/algorithm.md §11.4).

    python -m zscrgan export --dataset D [--run_name N] [--logs_dir DIR] [--checkpoint best|latest|PATH] --out MODEL_DIR

Builds the model exactly as the trainer does (`run.loop.build`), restores the checkpoint, and
writes MODEL_DIR (signatures in `zscrgan.toolkit.savedmodel`) with `zscrgan.yml` and the
self-check's noise. Before MODEL_DIR appears, the export checks itself: the unseen split is
ranked the trainer's way (the Evaluator) and through the saved signatures, loaded back from
disk, with the very same eps and z; unless the two rankings are identical nothing is written (exit 1).
"""
import os
import shutil

from zscrgan.errors import RunFault, UsageError
from zscrgan.files import check_new_folder, publish, staging_folder
from zscrgan.results.run import BEST, Run
from zscrgan.toolkit.arguments import run_arguments


def add_arguments(parser):
    parser.description = "Write a run's checkpoint as a TensorFlow SavedModel that TensorFlow alone can load."
    run_arguments(parser)
    parser.add_argument("--checkpoint", default=BEST, metavar="best|latest|PATH",
                        help="the checkpoint to export: the run's best (default), its latest, a checkpoint "
                             "prefix (.../best/ckpt-7) or a folder holding one")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="the folder to write (must not exist)")


def _run_config(args):
    """(run, cfg (EasyDict), checkpoint prefix) named by the flags; UsageError when there is none."""
    from easydict import EasyDict
    run = Run.find(args.dataset, args.run_name, args.logs_dir, args.results_dir)
    if run.saved is None:
        raise UsageError(f"no run in {run.logs} (no config.yml): train one with `python run_exp.py --dataset "
                         f"{args.dataset}`, or name it with --run_name / --logs_dir")
    prefix = run.checkpoint(args.checkpoint, required=True)
    cfg = EasyDict(run.cfg)
    if args.datasets_dir:
        cfg.datasets_dir = args.datasets_dir
    return run, cfg, prefix


def _check_out(out):
    check_new_folder(out, way="give a new folder (an export never overwrites one)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UsageError(f"--out {out}: the folder {parent} does not exist")


def main(args):
    """export: restore, save to the staging folder, check it against the Evaluator, move it into place."""
    from zscrgan.results.checkpoints import restore
    from zscrgan.run import loop

    _check_out(args.out)
    run, cfg, prefix = _run_config(args)
    cfg, dataset = loop.load_checked(cfg)
    model, evaluator, _, ckpt = loop.build(cfg, dataset)
    restore(ckpt, prefix)
    staging = staging_folder(args.out)
    try:
        check = _write(staging, model, evaluator, cfg, run, prefix, int(ckpt.round))
        if not check["identical"]:
            raise RunFault(f"self-check failed: the exported functions rank the unseen split differently from "
                           f"the trainer's Evaluator with the same eps and z ({check['differing_queries']} of "
                           f"{check['queries']} queries differ); nothing written")
        publish(staging, args.out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"Exported {prefix} (round {int(ckpt.round)}) to {args.out}: self-check Prec@{cfg.top_k} = "
          f"{check[f'prec_at_{cfg.top_k}']:.4f} on {check['queries']} queries, rankings identical to the Evaluator's")
    return 0


def _write(folder, model, evaluator, cfg, run, prefix, round_):
    """Save the SavedModel into `folder`, run the self-check on it, then write zscrgan.yml and the
    check's noise. Returns the self-check's record."""
    import numpy as np
    from zscrgan import config as config_lib
    from zscrgan.files import write_yaml
    from zscrgan.toolkit import savedmodel

    savedmodel.save(savedmodel.embedder(model.nets), folder)
    check, eps, z = self_check(evaluator, model.rng, savedmodel.Model(folder, meta={}))
    np.savez(os.path.join(folder, savedmodel.CHECK_NOISE), eps=eps, z=z)
    G = model.nets.generator
    meta = {
        "format": savedmodel.FORMAT,
        "text_dim": int(G.text_dim), "image_dim": int(G.image_dim), "embed_dim": int(G.embed_dim), "z_dim": int(G.z_dim),
        "signatures": {"embed_text": "text (N, T), eps (N, E), z (N, Z) float32 -> embedding (N, E): "
                                     "l2n(F(G(mu + exp(log_sigma) * eps, z))) (docs/algorithm.md section 7.1)",
                       "embed_image": "image (N, I) float32 -> embedding (N, E): l2n(F(image))"},
        "ranking": "cosine similarity = dot product of the embeddings, best first, ties to the lower gallery row",
        "noise": savedmodel.NOISE,
        "dataset": cfg.dataset,
        "checkpoint": {"path": prefix, "round": round_, "scores": _scores(run, round_)},
        "self_check": check,
        "config": config_lib.to_save(cfg),
    }
    write_yaml(os.path.join(folder, savedmodel.META), meta, "export description")
    return check


def _scores(run, round_):
    """The checkpoint round's recorded metrics ({name: value} from history.csv), or {}."""
    from zscrgan.results.history import round_row
    row = round_row(run.history()[1], round_) or {}
    return {k: v for k, v in row.items() if "prec_at_" in k or "map_at_" in k}


def self_check(evaluator, rng, loaded):
    """Rank the unseen split the trainer's way and through the saved signatures with the same noise.

    loaded: the export just saved (a savedmodel.Model). A twin of the run's generator, started
    from its state, gives the noise the Evaluator is about to draw (`Evaluator.query_noise`).
    Returns (record, eps (Q, E), z (Q, Z)).
    """
    import numpy as np
    import tensorflow as tf
    from zscrgan.model.metrics import prec_at_k
    from zscrgan.model.ranking import rank

    twin = tf.random.Generator.from_state(rng.state.read_value(), rng.algorithm)
    eps, z = (x.numpy() for x in evaluator.query_noise(twin))
    k, c = evaluator.k, evaluator.chunk
    trainer = rank(evaluator.embed_queries(), evaluator.gallery_blocks(), k)
    queries = loaded.embed_text(evaluator.texts.numpy(), eps, z)
    gallery = loaded.embed_image(evaluator.images.numpy())
    mine = rank(queries, [gallery[i:i + c] for i in range(0, len(gallery), c)], k)
    differing = int(np.sum(np.any(trainer != mine, axis=1)))
    record = {"queries": len(eps), "gallery": int(evaluator.images.shape[0]), "k": k,
              f"prec_at_{k}": prec_at_k(evaluator.query_labels, evaluator.gallery_labels[trainer]),
              "identical": differing == 0, "differing_queries": differing}
    return record, eps, z
