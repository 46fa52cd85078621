"""The main job: `python run_exp.py --dataset NAME [options]`.

Resolves the config, loads the dataset, then runs `epochs` rounds of E-step, M-step and
evaluation (SPEC.md section 5). The Python loop only logs, evaluates and checkpoints.
Outputs: <results_dir>/<NAME>_res/acc<score>.pkl, <logs_dir>/<NAME>_logs/{config.yml,
history.csv, TensorBoard events, checkpoints}.
"""
import argparse
import csv
import os
import sys
import time
import warnings

from zscrgan import config as config_lib
from zscrgan.config import ConfigError
from zscrgan.data import DatasetError

PAPER_DATASETS = "the paper's datasets (AWA1, AWA2, CUB, FLO, NAB_SCS, NAB_SCE, WIKI) come from the authors' links in README.md, 'Getting the data'"


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


def parse_args(argv):
    """The reference's flags plus the project's; every config key is a flag (a string here)."""
    parser = argparse.ArgumentParser(description="Train ZSCRGAN (CIKM 2020) on one dataset.")
    parser.add_argument("--config", help="a YAML file of overrides, applied after configs/<dataset>.yml")
    for key in config_lib.defaults():
        parser.add_argument(f"--{key}", dest=key, default=None, metavar="VALUE",
                            help="see configs/default.yml")
    args = parser.parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "config" and v is not None}
    return args.config, flags


def dataset_dir(cfg):
    from zscrgan.data import list_datasets
    folder = os.path.join(cfg.datasets_dir, cfg.dataset)
    if not os.path.isdir(folder):
        have = ", ".join(list_datasets(cfg.datasets_dir)) or "none"
        raise DatasetError(f"dataset '{cfg.dataset}' not found in {cfg.datasets_dir}/ (found: {have}); "
                           f"{PAPER_DATASETS}")
    return folder


def write_history(path, rows):
    """history.csv, one row per round, rewritten whole and renamed into place."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def train(cfg):
    """Run the experiment described by a resolved config; returns the best Prec@K."""
    import tensorflow as tf
    from tqdm import tqdm

    from zscrgan.data import gallery_warning, load_dataset
    from zscrgan.evaluation import Evaluator, dump_path, write_dump
    from zscrgan.training import ZSCRGAN

    dataset = load_dataset(dataset_dir(cfg))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gallery_warning(dataset, cfg.top_k)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)

    res_dir = os.path.join(cfg.results_dir, f"{cfg.dataset}_res")
    log_dir = os.path.join(cfg.logs_dir, f"{cfg.dataset}_logs")
    os.makedirs(res_dir, exist_ok=True)
    os.makedirs(log_dir, exist_ok=True)
    config_lib.dump_config(cfg, os.path.join(log_dir, "config.yml"))

    tf.config.experimental.enable_op_determinism()
    model = ZSCRGAN(cfg, dataset.text_dim, dataset.image_dim, dataset)
    evaluator = Evaluator(dataset, model.nets, model.rng, cfg.top_k, cfg.eval_ks, cfg.eval_chunk)
    best = tf.Variable(-1.0, dtype=tf.float64, name="best")
    rounds_done = tf.Variable(0, dtype=tf.int64, name="round")
    ckpt = tf.train.Checkpoint(model=model, best=best, round=rounds_done)
    latest = tf.train.CheckpointManager(ckpt, os.path.join(log_dir, "latest"), max_to_keep=1)
    best_ckpt = tf.train.CheckpointManager(ckpt, os.path.join(log_dir, "best"), max_to_keep=1)
    writer = tf.summary.create_file_writer(log_dir)
    history, key = [], f"prec_at_{cfg.top_k}"
    e_steps, n_critic, m_steps = (tf.constant(cfg.e_steps), tf.constant(cfg.n_critic),
                                  tf.constant(cfg.m_steps))

    bar = tqdm(range(cfg.epochs), desc=cfg.dataset, unit="round", dynamic_ncols=True)
    for r in bar:
        t0 = time.perf_counter()
        e_out = {k: float(v) for k, v in model.e_step(e_steps, n_critic).items()}
        t1 = time.perf_counter()
        m_out = {k: float(v) for k, v in model.m_step(m_steps).items()}
        t2 = time.perf_counter()
        metrics, records = evaluator.evaluate()
        t3 = time.perf_counter()
        rounds_done.assign(r + 1)
        score = metrics[key]
        if score > best.numpy():
            best.assign(score)
            write_dump(dump_path(res_dir, score), records)
            tqdm.write(f"New best Prec@{cfg.top_k} = {score}")
            best_ckpt.save(checkpoint_number=r + 1)
        latest.save(checkpoint_number=r + 1)
        row = {"round": r + 1, **metrics, **e_out, **m_out,
               "e_step_s": t1 - t0, "m_step_s": t2 - t1, "eval_s": t3 - t2}
        history.append(row)
        write_history(os.path.join(log_dir, "history.csv"), history)
        with writer.as_default(step=r + 1):
            for name, value in row.items():
                if name != "round":
                    tf.summary.scalar("g_loss_kl_loss" if name == "kl_loss" else name, value)
        bar.set_postfix({f"P@{cfg.top_k}": f"{score:.4f}", "best": f"{best.numpy():.4f}"})
    writer.flush()
    return float(best.numpy())


def main(argv=None):
    """Entry point; returns the exit status (0 ok, 2 bad input)."""
    try:
        config_file, flags = parse_args(argv)
        cfg = config_lib.load_config(config_file=config_file, flags=flags)
        print("Resolved config:\n" + "\n".join(f"  {k}: {v}" for k, v in cfg.items()))
        train(cfg)
    except (ConfigError, DatasetError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
