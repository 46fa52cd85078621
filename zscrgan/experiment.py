"""The main job: `python run_exp.py --dataset NAME [options]`.

Resolves the config, loads the dataset, then runs `epochs` rounds of E-step, M-step and
evaluation (docs/algorithm.md §5). The Python loop only logs, evaluates and checkpoints.
Outputs: <results_dir>/<NAME>_res/acc<score>.pkl, <logs_dir>/<NAME>_logs/{config.yml,
model_shape.yml, history.csv, TensorBoard events, latest/, best/}; a run with a
`run_name` uses a folder of that name inside each. With `val_classes`, `select` and
`patience` (docs/algorithm.md §11.2) the best round may be chosen on held-out seen classes
and training may stop early; without them a run is the reference's.

`run` is the one training loop: the command line and the sweep's trials both call it.

`--resume` continues a run from its latest checkpoint, `--eval_only` evaluates a checkpoint.
Config and data are checked before TensorFlow is imported, so bad input fails fast.
Exit status: 0 done, 2 bad input or refused, 3 training diverged, 130/143 stopped by
SIGINT/SIGTERM.
"""
import argparse
import math
import os
import pickle
import re
import signal
import sys
import threading
import time

import yaml
from easydict import EasyDict

from zscrgan import config as config_lib
from zscrgan import selection
from zscrgan.checkpointing import CheckpointMismatch, CheckpointSlot, restore, round_of
from zscrgan.config import ConfigError
from zscrgan.data import DatasetError
from zscrgan.runfiles import (History, LockHeld, RunLock, atomic_write, fault_point, model_shape,
                              read_yaml, remove_partials, shape_changes, write_yaml)
from zscrgan.runfiles import run_dirs as _run_dirs

PAPER_DATASETS = "the paper's datasets (AWA1, AWA2, CUB, FLO, NAB_SCS, NAB_SCE, WIKI) come from the authors' links in README.md, 'Getting the data'"

EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3


class UsageError(Exception):
    """Bad input or a refused request: reported as one line, exit status 2."""


class Diverged(Exception):
    """A non-finite loss or weight: reported as one line, exit status 3."""


class Stopped(Exception):
    """Stopped by a signal after the last round's checkpoint; args: (signal number, message)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        option = re.match(r"argument (--\w+): expected one argument$", message)
        if option:  # argparse takes a value such as -1e-4 for an option
            message += f" (write a negative number as {option.group(1)}=-1e-4)"
        raise UsageError(f"{message} (see --help)")


def parse_args(argv):
    """The reference's flags plus the project's; every config key is a flag (a string here)."""
    parser = _Parser(description="Train ZSCRGAN (CIKM 2020) on one dataset.",
                     epilog="Defaults are those of configs/default.yml, where each option is described; "
                            "configs/<dataset>.yml (if present) and --config override them.")
    parser.add_argument("--config", metavar="FILE",
                        help="a YAML file of overrides, applied after configs/<dataset>.yml")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the logs folder from its latest checkpoint "
                             "(its config.yml is the base and options given here override it; "
                             "a change of the model's shape is refused)")
    parser.add_argument("--eval_only", action="store_true",
                        help="evaluate a checkpoint and write its dump to <results>/<NAME>_res/eval/, "
                             "without training")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="with --eval_only: a checkpoint prefix (.../best/ckpt-7) or a folder "
                             "holding one; default: the run's best, else its latest, else fresh weights")
    for key, (metavar, text) in config_lib.flag_help().items():
        parser.add_argument(f"--{key}", dest=key, default=None, metavar=metavar, help=text)
    args = parser.parse_args(argv)
    if args.checkpoint and not args.eval_only:
        raise UsageError("--checkpoint needs --eval_only")
    if args.resume and args.eval_only:
        raise UsageError("--resume and --eval_only do not go together")
    special = {"config", "resume", "eval_only", "checkpoint"}
    flags = {k: v for k, v in vars(args).items() if k not in special and v is not None}
    return args, flags


# --------------------------------------------------------------------------- setup

def run_dirs(cfg):
    """(logs folder, results folder) of a run."""
    return _run_dirs(cfg.dataset, cfg.run_name, cfg.logs_dir, cfg.results_dir)


def resolve_config(config_file, flags, saved_file):
    """The run's config: the saved config.yml of an earlier run (if any) as the base, then the
    keys set by `--config` and flags. Returns (cfg, [changed keys])."""
    cfg = config_lib.load_config(config_file=config_file, flags=flags)
    if not saved_file or not os.path.isfile(saved_file):
        return cfg, []
    saved = config_lib.load_config(config_file=saved_file, flags={"dataset": cfg.dataset})
    explicit = set(flags)
    if config_file:
        with open(config_file) as f:
            explicit |= set(yaml.safe_load(f) or {})
    explicit.add("logs_dir")  # where the run was found, even if it was moved
    changed = [k for k in explicit if saved[k] != cfg[k]]
    for key in explicit:
        saved[key] = cfg[key]
    return saved, sorted(changed)


def dataset_dir(cfg):
    from zscrgan.data import list_datasets
    folder = os.path.join(cfg.datasets_dir, cfg.dataset)
    if not os.path.isdir(folder):
        have = ", ".join(list_datasets(cfg.datasets_dir)) or "none"
        raise DatasetError(f"dataset '{cfg.dataset}' not found in {cfg.datasets_dir}/ (found: {have}); "
                           f"{PAPER_DATASETS}")
    return folder


def load_checked_dataset(cfg):
    from zscrgan.data import dataset_warnings, load_dataset
    dataset = load_dataset(dataset_dir(cfg))
    for message in dataset_warnings(dataset, cfg.top_k):
        print(f"warning: {message}", file=sys.stderr)
    return dataset


def with_val_ids(cfg, dataset):
    """A copy of cfg whose val_classes is the list of validation class ids (or None), so that
    config.yml records the classes a count or 'file' chose (docs/algorithm.md §11.2)."""
    val_ids = selection.resolve_val_ids(cfg, dataset, dataset_dir(cfg))
    if val_ids is None:
        return cfg
    note = selection.gallery_note(dataset, val_ids, cfg.top_k)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    return EasyDict({**cfg, "val_classes": val_ids})


def checkpoint_to_evaluate(path, log_dir):
    """The prefix --eval_only evaluates, or None for fresh weights."""
    if path:
        if os.path.isdir(path):
            prefix = CheckpointSlot(path).current()
            if prefix is None:
                raise UsageError(f"--checkpoint {path}: the folder holds no checkpoint")
            return prefix
        if not os.path.isfile(path + ".index"):
            raise UsageError(f"--checkpoint {path}: no checkpoint there (expected {path}.index)")
        return path
    for slot in ("best", "latest"):
        prefix = CheckpointSlot(os.path.join(log_dir, slot)).current()
        if prefix:
            return prefix
    return None


def check_can_train(resume, log_dir, shape, cfg):
    """Refuse to overwrite an earlier run's checkpoints, or to resume with another model shape
    or another way of choosing the best round."""
    slots = [CheckpointSlot(os.path.join(log_dir, s)).current() for s in ("latest", "best")]
    found = [p for p in slots if p]
    if not resume and found:
        rounds = max(round_of(p) for p in found)
        raise UsageError(f"{log_dir} holds the checkpoints of an earlier run (up to round {rounds}): "
                         "continue it with --resume, or start a new run with another --logs_dir")
    saved = read_yaml(os.path.join(log_dir, "model_shape.yml")) if resume else None
    changes = shape_changes(saved, shape) if isinstance(saved, dict) else []
    if changes:
        raise UsageError(f"cannot resume {log_dir}: the model's shape would change ({', '.join(changes)}); "
                         "resume with the run's settings, or start a new run with another --logs_dir")
    saved = read_yaml(os.path.join(log_dir, "config.yml")) if found else None
    if isinstance(saved, dict):
        changes = [f"{key} {saved.get(key, off)} -> {cfg[key]}" for key, off in
                   (("val_classes", None), ("select", "test")) if saved.get(key, off) != cfg[key]]
        if changes:
            raise UsageError(f"cannot resume {log_dir} with another model selection ({', '.join(changes)}): "
                             "its best round was chosen the run's way; start a new run with another --logs_dir")


# --------------------------------------------------------------------------- training

class StopOnSignal:
    """The first SIGINT/SIGTERM asks the loop to stop after the current round's checkpoint;
    a second one stops at once (KeyboardInterrupt), losing that round."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # e.g. a sweep's trial: its runner stops it, and Python allows handlers only here
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this round's checkpoint "
              "(send it again to stop at once and lose this round)", file=sys.stderr, flush=True)


def check_finite(round_, step, losses, weights):
    """Raise Diverged naming the round, step kind and losses when any loss or weight is not finite.

    losses: {(step kind, loss name): value}; weights: {step kind: all finite?}.
    """
    bad = [f"{kind} loss {name} = {value}" for (kind, name), value in losses.items()
           if not math.isfinite(value)]
    bad += [f"{kind} weights are not finite" for kind, ok in weights.items() if not ok]
    if bad:
        means = ", ".join(f"{name} = {value:.6g}" for (_, name), value in losses.items())
        raise Diverged(f"round {round_}: training diverged in the {step}: {'; '.join(bad)} "
                       f"(mean losses of the step: {means})")


def weights_finite(groups):
    import tensorflow as tf
    return {kind: bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))
            for kind, variables in groups.items()}


def run_round(r, model, evaluator, steps, val_evaluator=None):
    """One round: E-step, M-step, evaluation. Returns (metrics, losses, timings, records).

    With a val_evaluator, the validation classes are evaluated after the test classes and
    their metrics join `metrics` as val_prec_at_<K>, val_map_at_<K>.
    """
    e_steps, n_critic, m_steps = steps
    t0 = time.perf_counter()
    e_out = {k: float(v) for k, v in model.e_step(e_steps, n_critic).items()}
    check_finite(r, "E-step", {("critic", "d_loss"): e_out["d_loss"],
                               ("generator", "g_loss"): e_out["g_loss"],
                               ("generator", "kl_loss"): e_out["kl_loss"]},
                 weights_finite({"critic": model.d_vars, "generator": model.g_vars}))
    fault_point("after_e_step")
    t1 = time.perf_counter()
    m_out = {k: float(v) for k, v in model.m_step(m_steps).items()}
    check_finite(r, "M-step", {("CSEM", "csem_loss"): m_out["csem_loss"]},
                 weights_finite({"CSEM": model.f_vars}))
    t2 = time.perf_counter()
    metrics, records = evaluator.evaluate()
    if val_evaluator is not None:
        metrics.update({f"val_{k}": v for k, v in val_evaluator.evaluate()[0].items()})
    t3 = time.perf_counter()
    timings = {"e_step_s": t1 - t0, "m_step_s": t2 - t1, "eval_s": t3 - t2}
    return metrics, {**e_out, **m_out}, timings, records


def write_dump(res_dir, score, records):
    from zscrgan.evaluation import dump_path
    os.makedirs(res_dir, exist_ok=True)
    path = dump_path(res_dir, score)
    atomic_write(path, pickle.dumps(records, protocol=2), "dump")
    return path


def set_threads(n):
    """Use n CPU threads for TensorFlow's op pools (0: TensorFlow's choice). Only possible
    before TensorFlow's runtime starts; afterwards a differing request is reported."""
    import tensorflow as tf
    if not n:
        return
    if tf.config.threading.get_intra_op_parallelism_threads() == n:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        print(f"warning: threads = {n} ignored: TensorFlow had already started in this process",
              file=sys.stderr)


def build(cfg, dataset):
    """Model, evaluator and the checkpoint object holding the model, round and best score."""
    import tensorflow as tf
    from zscrgan.evaluation import Evaluator
    from zscrgan.training import ZSCRGAN

    set_threads(cfg.threads)
    tf.config.experimental.enable_op_determinism()
    model = ZSCRGAN(cfg, dataset.text_dim, dataset.image_dim,
                    selection.training_split(dataset, cfg.val_classes))
    evaluator = Evaluator(dataset, model.nets, model.rng, cfg.top_k, cfg.eval_ks, cfg.eval_chunk)
    rounds_done = tf.Variable(0, dtype=tf.int64, name="round")
    best = tf.Variable(-1.0, dtype=tf.float64, name="best")
    ckpt = tf.train.Checkpoint(model=model, best=best, round=rounds_done)
    return model, evaluator, ckpt


def train(cfg, dataset, log_dir, res_dir, on_round=None, progress=True):
    """Run (or continue) the rounds; returns {"rounds": rounds done, "best": best score of the
    selection metric, "test_at_best": test Prec@K of the best round, "stopped_early": bool}.

    The selection metric (docs/algorithm.md §11.2) is the test Prec@K (the reference), or with
    `select: val` the validation classes' Prec@K: it decides the dump, the best/ checkpoint
    and, with `patience`, when to stop. on_round(row, best, is_best), if given, is called
    after each round's checkpoint with the round's history row ({round, prec_at_K...,
    map_at_K, [val_prec_at_K..., val_map_at_K,] losses, timings}), the best score so far and
    whether this round set it. progress: show a progress bar.
    """
    import tensorflow as tf
    from tqdm import tqdm

    model, evaluator, ckpt = build(cfg, dataset)
    val_evaluator = None
    if cfg.val_classes:
        from zscrgan.evaluation import Evaluator, eval_split
        val_evaluator = Evaluator(eval_split(dataset, cfg.val_classes), model.nets, model.rng,
                                  cfg.top_k, cfg.eval_ks, cfg.eval_chunk)
    key, chosen = f"prec_at_{cfg.top_k}", selection.score_key(cfg.select, cfg.top_k)
    metric = selection.metric_name(cfg.select, cfg.top_k)
    latest, best_slot = CheckpointSlot(os.path.join(log_dir, "latest")), CheckpointSlot(os.path.join(log_dir, "best"))
    if latest.current():
        restore(ckpt, latest.current())
        print(f"Resuming from round {int(ckpt.round)} (best {metric} so far {float(ckpt.best)})")
    start = int(ckpt.round)
    history = History(os.path.join(log_dir, "history.csv"), start)
    # The best round is in the best/ checkpoint's name, so early stopping needs no state of its own.
    best_round = round_of(best_slot.current()) if best_slot.current() else 0
    test_at_best = _test_score(history.rows, best_round, key)
    stopped_early = _patience_over(cfg, start, best_round)
    if stopped_early:
        print(f"Nothing to do: the run stopped early at round {start}, {start - best_round} rounds after "
              f"its best {metric} (patience {cfg.patience})")
        return {"rounds": start, "best": float(ckpt.best), "test_at_best": test_at_best, "stopped_early": True}

    steps = tf.constant(cfg.e_steps), tf.constant(cfg.n_critic), tf.constant(cfg.m_steps)
    writer = tf.summary.create_file_writer(log_dir)
    bar = tqdm(range(start + 1, cfg.epochs + 1), initial=start, total=cfg.epochs, desc=cfg.dataset,
               unit="round", dynamic_ncols=True, disable=not progress)
    try:
        with StopOnSignal() as stop:
            for r in bar:
                try:
                    metrics, losses, timings, records = run_round(r, model, evaluator, steps, val_evaluator)
                except KeyboardInterrupt:  # a second signal, or Ctrl-C before the handler was set
                    raise Stopped(stop.signum or signal.SIGINT, f"stopped in round {r}, which is lost; "
                                                 f"the latest checkpoint (round {r - 1}) is kept")
                score = metrics[chosen]
                ckpt.round.assign(r)
                is_best = score > float(ckpt.best)
                if is_best:
                    ckpt.best.assign(score)
                    best_round, test_at_best = r, metrics[key]
                    write_dump(res_dir, metrics[key], records)  # the test retrieval, named by its score
                    also = "" if chosen == key else f" (test Prec@{cfg.top_k} = {metrics[key]})"
                    tqdm.write(f"New best {metric} = {score}{also}")
                    best_slot.save(ckpt, r)
                # History before the latest checkpoint: a kill between them leaves a row that
                # the resumed run drops and writes again.
                row = {"round": r, **metrics, **losses, **timings}
                history.append(row)
                with writer.as_default(step=r):
                    for name, value in {**metrics, **losses, **timings}.items():
                        tf.summary.scalar("g_loss_kl_loss" if name == "kl_loss" else name, value)
                writer.flush()
                fault_point("before_latest_checkpoint")
                latest.save(ckpt, r)
                shown = {f"P@{cfg.top_k}": metrics[key], f"val P@{cfg.top_k}": metrics.get(f"val_{key}"),
                         "best": float(ckpt.best)}
                bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items() if v is not None})
                if on_round is not None:
                    on_round(row, float(ckpt.best), is_best)
                if _patience_over(cfg, r, best_round):
                    stopped_early = True
                    break
                if stop.signum is not None:
                    raise Stopped(stop.signum, f"stopped after round {r}; continue with --resume")
    except Diverged as e:
        kept = (f"the latest checkpoint (round {int(ckpt.round)}) and the dumps are kept" if int(ckpt.round)
                else "no checkpoint was written yet")
        raise Diverged(f"{e}. Stopped; {kept} (lower learning rates may help)")
    finally:
        bar.close()
        writer.close()
    if stopped_early:
        print(f"Stopped early after round {int(ckpt.round)}: no new best {metric} in the {cfg.patience} rounds "
              f"since round {best_round} (patience {cfg.patience})")
    also = "" if chosen == key else f" (round {best_round}, test Prec@{cfg.top_k} = {test_at_best})"
    print(f"Done: {int(ckpt.round)} rounds, best {metric} = {float(ckpt.best)}{also}")
    return {"rounds": int(ckpt.round), "best": float(ckpt.best), "test_at_best": test_at_best,
            "stopped_early": stopped_early}


def _patience_over(cfg, round_, best_round):
    """Early stopping: `patience` rounds have passed since the best round."""
    return bool(cfg.patience) and round_ > 0 and round_ - best_round >= cfg.patience


def _test_score(rows, round_, key):
    """The test score `key` of a round in history rows, or None when the rows lack it."""
    row = next((row for row in rows if int(row["round"]) == round_), None)
    return None if row is None else float(row[key])


def evaluate_only(cfg, dataset, prefix, res_dir):
    """Evaluate a checkpoint (or fresh weights) once and write its dump."""
    model, evaluator, ckpt = build(cfg, dataset)
    if prefix:
        restore(ckpt, prefix)
        print(f"Evaluating {prefix} (round {int(ckpt.round)})")
    else:
        print(f"warning: no checkpoint found: evaluating freshly initialised weights (seed {cfg.seed})",
              file=sys.stderr)
    metrics, records = evaluator.evaluate()
    for name, value in metrics.items():
        print(f"{name} = {value}")
    path = write_dump(os.path.join(res_dir, "eval"), metrics[f"prec_at_{cfg.top_k}"], records)
    print(f"Dump: {path}")


# --------------------------------------------------------------------------- entry point

def locked(log_dir):
    """Take the run folder's lock, or refuse."""
    os.makedirs(log_dir, exist_ok=True)
    try:
        return RunLock(log_dir).acquire()
    except LockHeld as e:
        raise UsageError(f"another run is using {log_dir} ({e}); wait for it to finish, "
                         "or use another --logs_dir")


def start_training(cfg, dataset, log_dir, res_dir, resume, on_round=None, progress=True):
    """Checks and files that come before the first round (holding the lock), then `train`."""
    shape = model_shape(cfg, selection.training_split(dataset, cfg.val_classes))
    check_can_train(resume, log_dir, shape, cfg)
    remove_partials([log_dir, res_dir] + [os.path.join(log_dir, s) for s in ("latest", "best")])
    os.makedirs(res_dir, exist_ok=True)
    write_yaml(os.path.join(log_dir, "config.yml"), config_lib.to_save(cfg), "config")
    write_yaml(os.path.join(log_dir, "model_shape.yml"), shape, "shape")
    done = CheckpointSlot(os.path.join(log_dir, "latest")).current()
    done = round_of(done) if done else 0
    if resume and not done:
        print(f"No checkpoint to resume in {log_dir}: starting from round 1")
    if done >= cfg.epochs:
        print(f"Nothing to do: {done} of {cfg.epochs} rounds are done (raise --epochs to go on)")
        return {"rounds": done, **selection.best_in_history(cfg, log_dir), "stopped_early": False}
    return train(cfg, dataset, log_dir, res_dir, on_round, progress)


def run(cfg, resume=False, eval_only=False, checkpoint=None, on_round=None, progress=True):
    """Train (or with eval_only, evaluate) one run of a resolved config; the one entry point
    the command line and the sweep share.

    Returns train's summary ({"rounds", "best", "test_at_best", "stopped_early"}) or None
    after eval_only. Raises ConfigError, DatasetError, UsageError, CheckpointMismatch (bad
    input), Diverged, Stopped.
    """
    log_dir, res_dir = run_dirs(cfg)
    dataset = load_checked_dataset(cfg)
    cfg = with_val_ids(cfg, dataset)
    if progress:
        print("Resolved config:\n" + "\n".join(f"  {k}: {v}" for k, v in cfg.items()))
    prefix = checkpoint_to_evaluate(checkpoint, log_dir) if eval_only else None
    lock = locked(log_dir)
    try:
        if eval_only:
            remove_partials([res_dir, os.path.join(res_dir, "eval")])
            evaluate_only(cfg, dataset, prefix, res_dir)
            return None
        return start_training(cfg, dataset, log_dir, res_dir, resume, on_round, progress)
    finally:
        lock.release()


def prepare_and_run(argv):
    args, flags = parse_args(argv)
    cfg, _ = resolve_config(args.config, flags, None)
    if args.resume or args.eval_only:  # the run's own config.yml is the base
        cfg, changed = resolve_config(args.config, flags, os.path.join(run_dirs(cfg)[0], "config.yml"))
        if changed and args.resume:
            print(f"Resuming with changed settings: {', '.join(changed)}")
    run(cfg, args.resume, args.eval_only, args.checkpoint)
    return 0


def _one_line(e):
    return " ".join(str(e).split())


def main(argv=None):
    """Entry point; returns the exit status (see the module docstring)."""
    try:
        return prepare_and_run(argv)
    except (ConfigError, DatasetError, UsageError, CheckpointMismatch) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Diverged as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except Stopped as e:
        signum, message = e.args
        print(message, file=sys.stderr)
        return 128 + signum
    except KeyboardInterrupt:
        print("interrupted; the latest checkpoint is kept", file=sys.stderr)
        return 128 + signal.SIGINT
