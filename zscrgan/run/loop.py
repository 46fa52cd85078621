"""The one training loop: `run(cfg)` trains (or evaluates) one run of a resolved config.

Rounds of E-step, M-step and evaluation (docs/algorithm.md §5); the Python loop only logs,
evaluates and checkpoints. The command line, the sweep's trials and the benchmarks all call
`run`. Outputs, at the paths zscrgan.results.run.Run gives: <results>/acc<score>.pkl and
<logs>/{config.yml, model_shape.yml, history.csv, latest/, best/} through zscrgan.results,
and TensorBoard's events in <logs>, written by tf.summary. With `val_classes`, `select` and
`patience` (docs/algorithm.md §11.2) the best round may be chosen on held-out seen classes
and training may stop early; without them a run is the reference's.

Raises BadInput (config, dataset, refused), Diverged, Stopped, RunFault (docs/algorithm.md §11.3).
"""
import contextlib
import math
import os
import signal
import sys
import threading
import time

from easydict import EasyDict

from zscrgan import config as config_lib
from zscrgan.data import selection
from zscrgan.data.dataset import dataset_folder, dataset_warnings, load_dataset
from zscrgan.errors import Diverged, RunFault, Stopped, UsageError
from zscrgan.files import fault_point, read_yaml, remove_partials, write_yaml
from zscrgan.results.checkpoints import restore, round_of
from zscrgan.results.dumps import write_dump
from zscrgan.results.history import History, Selected, is_better, metric_name
from zscrgan.results.run import BEST, CONFIG_FILE, EVAL, LATEST, SHAPE_FILE, Run, model_shape, shape_changes
from zscrgan.run import compile_cache
from zscrgan.run.members import (ACTIVE, DIVERGED, DONE, STOPPED, Member, build_group, commit_latest, member_configs,
                                 probe, roll_forward)
from zscrgan.run.steps import (checkpoint_of, compiled, e_step_tracing_m_step, frozen_heap, setup_tensorflow)

# --------------------------------------------------------------------------- before the first round


def dataset_of(cfg):
    """The run's dataset, loaded and validated (DatasetError naming what is wrong)."""
    return load_dataset(dataset_folder(cfg.datasets_dir, cfg.dataset))


def checked_inputs(cfg, dataset=None):
    """The checks every run makes before TensorFlow starts: (cfg, dataset, warnings).

    cfg comes back with val_classes as the list of validation class ids (or None), so that
    config.yml records the classes a count or 'file' chose (docs/algorithm.md §11.2);
    dataset: the one already loaded for cfg, if any; warnings: what the data may still get
    wrong, one sentence each.
    """
    dataset = dataset or dataset_of(cfg)
    warnings = dataset_warnings(dataset, cfg.top_k)
    val_ids = selection.resolve_val_ids(cfg, dataset, dataset_folder(cfg.datasets_dir, cfg.dataset))
    if val_ids is not None:
        warnings += [note for note in [selection.gallery_note(dataset, val_ids, cfg.top_k)] if note]
        cfg = EasyDict({**cfg, "val_classes": val_ids})
    return cfg, dataset, warnings


def load_checked(cfg):
    """checked_inputs, its warnings printed to stderr: (cfg, dataset)."""
    cfg, dataset, warnings = checked_inputs(cfg)
    for message in warnings:
        print(f"warning: {message}", file=sys.stderr)
    return cfg, dataset


def check_can_train(resume, run, shape, cfg):
    """Refuse to overwrite an earlier run's checkpoints or to mix dumps with another run's, or
    to resume with another model shape or another way of choosing the best round."""
    log_dir = run.logs
    found = [p for p in (run.checkpoint(LATEST), run.checkpoint(BEST)) if p]
    if not resume and found:
        rounds = max(round_of(p) for p in found)
        raise UsageError(f"{log_dir} holds the checkpoints of an earlier run (up to round {rounds}): "
                         f"continue it with --resume, or start a new run with a --run_name (or another "
                         f"--logs_dir and --results_dir); to start over, delete {log_dir} and {run.results}")
    dumps = run.dumps()
    # With --resume, dumps beside no checkpoint are this run's when it started here (config.yml:
    # killed before its first checkpoint), another run's when it did not.
    if dumps and not (resume and os.path.isfile(run.path(CONFIG_FILE))):
        raise UsageError(f"{run.results} holds the dumps of another run ({os.path.basename(dumps[0])}"
                         f"{', ...' * (len(dumps) > 1)}): start this run with a --run_name or another --results_dir; "
                         f"to start over, delete {log_dir} and {run.results}")
    saved = read_yaml(run.path(SHAPE_FILE)) if resume else None
    changes = shape_changes(saved, shape) if saved else []
    if changes:
        raise UsageError(f"cannot resume {log_dir}: the model's shape would change ({', '.join(changes)}); "
                         "resume with the run's settings, or start a new run with another --logs_dir")
    saved = read_yaml(run.path(CONFIG_FILE)) if found else None
    if saved:
        changes = [f"{key} {saved.get(key, off)} -> {cfg[key]}" for key, off in
                   (("val_classes", None), ("select", "test")) if saved.get(key, off) != cfg[key]]
        if changes:
            raise UsageError(f"cannot resume {log_dir} with another model selection ({', '.join(changes)}): "
                             "its best round was chosen the run's way; start a new run with another --logs_dir")


# --------------------------------------------------------------------------- faults


class _WriteFailed(Exception):
    """The operating system refused a run file; args: (path, cause)."""


@contextlib.contextmanager
def writing(path):
    """Turn an OS refusal to write `path` (no space, no permission) into _WriteFailed."""
    import tensorflow as tf
    try:
        yield
    except OSError as e:
        raise _WriteFailed(e.filename or path, e.strerror or str(e))
    except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
            tf.errors.FailedPreconditionError, tf.errors.UnknownError) as e:
        cause = str(e.message).split(" [Op:")[0].strip().splitlines()[-1]
        raise _WriteFailed(path, cause)


def write_fault(error, run):
    """The one line a refused write ends a run with: what, why, the last whole checkpoint, the way on."""
    path, cause = error.args
    latest = run.checkpoint(LATEST)
    kept = (f"the last whole checkpoint is round {round_of(latest)} ({latest})" if latest
            else "no checkpoint was written yet")
    return RunFault(f"cannot write {path}: {cause}; {kept}. Free space or fix the folder's permissions, "
                    "then continue with --resume")


# --------------------------------------------------------------------------- the rounds


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


def run_round(model, members, steps, startup=None):
    """One round of every active member: E-step, M-step, evaluation. Returns {member: (metrics,
    losses, timings, records)} for the members that did not diverge; a member whose losses or
    weights are not finite is marked diverged (members.DIVERGED, its message in .error).

    A member's round is its own (member.next_round()). With a val evaluator, the validation
    classes are evaluated after the test classes and their metrics join `metrics` as
    val_prec_at_<K>, val_map_at_<K>. startup: see `run`.
    """
    e_steps, n_critic, m_steps = steps
    t0 = time.perf_counter()
    e_out = {k: v.numpy() for k, v in compiled(model, lambda m: e_step_tracing_m_step(m, *steps, startup)).items()}
    for m in members:
        e = m.losses(e_out)
        checked(m, "E-step", {("critic", "d_loss"): e["d_loss"], ("generator", "g_loss"): e["g_loss"],
                              ("generator", "kl_loss"): e["kl_loss"]}, ("critic", "generator"))
    members = [m for m in members if m.status == ACTIVE]
    if not members:
        return {}
    fault_point("after_e_step")
    t1 = time.perf_counter()
    m_out = {k: v.numpy() for k, v in compiled(model, lambda m: m.m_step(m_steps)).items()}
    for m in members:
        checked(m, "M-step", {("CSEM", "csem_loss"): m.losses(m_out)["csem_loss"]}, ("CSEM",))
    members = [m for m in members if m.status == ACTIVE]
    t2 = time.perf_counter()
    evaluated = {}
    for m in members:
        metrics, records = m.evaluator.evaluate()
        if m.val is not None:
            metrics.update({f"val_{k}": v for k, v in m.val.evaluate()[0].items()})
        evaluated[m] = metrics, records
    t3 = time.perf_counter()
    timings = {"e_step_s": t1 - t0, "m_step_s": t2 - t1, "eval_s": t3 - t2}
    return {m: (metrics, {**m.losses(e_out), **m.losses(m_out)}, timings, records)
            for m, (metrics, records) in evaluated.items()}


def checked(member, step, losses, kinds):
    """Mark the member diverged when a loss or its weights of `kinds` are not finite."""
    try:
        check_finite(member.next_round(), step, losses, weights_finite({k: member.weights(k) for k in kinds}))
    except Diverged as e:
        done = int(member.ckpt.round)
        kept = (f"the latest checkpoint (round {done}) and the dumps are kept" if done
                else "no checkpoint was written yet")
        member.status, member.error = DIVERGED, f"{e}. Stopped; {kept} (lower learning rates may help)"


def build(cfg, dataset, reuse_kernels=False):
    """(model, evaluator, val_evaluator, checkpoint): the model, the evaluators of the test
    classes and of the validation classes (None when the run holds none out), and the
    checkpoint object holding the model, round and best score.

    reuse_kernels: take instead the model and evaluators of this process's previous run with
    the same graphs, already traced, holding this run's fresh values (zscrgan/run/kept_kernels.py).
    """
    from zscrgan.model.em import ZSCRGAN
    from zscrgan.data.dataset import eval_split
    from zscrgan.model.evaluation import Evaluator
    from zscrgan.run import kept_kernels

    setup_tensorflow(cfg)
    model = ZSCRGAN(cfg, dataset.text_dim, dataset.image_dim,
                    selection.training_split(dataset, cfg.val_classes))

    def evaluator_of(split):
        return Evaluator(split, model.nets, model.rng, cfg.top_k, cfg.eval_ks, cfg.eval_chunk)

    evaluator = evaluator_of(eval_split(dataset))
    val = evaluator_of(eval_split(dataset, cfg.val_classes)) if cfg.val_classes else None
    if reuse_kernels:
        model, (evaluator, val) = kept_kernels.reuse(cfg, model, (evaluator, val))
    return model, evaluator, val, checkpoint_of(model)


class RoundWriter:
    """Writes what a round leaves: dump, checkpoints, history, TensorBoard, progress bar.

    label: names the run on the console (a group's member: `seed1: New best ...`); a labelled
    writer has no progress bar of its own.
    """

    def __init__(self, cfg, run, ckpt, progress, label=""):
        import tensorflow as tf
        from tqdm import tqdm

        self.cfg, self.run, self.log_dir, self.res_dir, self.ckpt = cfg, run, run.logs, run.results, ckpt
        self.said = f"{label}: " if label else ""
        self.key, self.chosen = run.test_key, run.selection_key
        self.metric = metric_name(cfg.select, cfg.top_k)
        self.latest, self.best = run.slot(LATEST), run.slot(BEST)
        if self.latest.current():
            restore(ckpt, self.latest.current())
            print(f"{self.said}Resuming from round {int(ckpt.round)} (best {self.metric} so far {float(ckpt.best):.4f})")
        self.start = int(ckpt.round)
        self.history = History(run.history_path, self.start)
        self.selected = run.selected_so_far(float(ckpt.best), self.history.rows)
        self.writer = tf.summary.create_file_writer(run.logs)
        self.rounds = range(self.start + 1, cfg.epochs + 1)
        self.bar = tqdm(initial=self.start, total=cfg.epochs, desc=cfg.dataset, unit="round", dynamic_ncols=True,
                        disable=not progress or bool(label))

    def record(self, r, metrics, losses, timings, records, save_latest=True):
        """Write round r's files in a kill-safe order; returns (history row, is it the best?).
        save_latest=False leaves the latest checkpoint to the caller (a group commits its
        members' together)."""
        import tensorflow as tf
        from tqdm import tqdm

        score, ckpt = metrics[self.chosen], self.ckpt
        ckpt.round.assign(r)
        is_best = is_better(score, float(ckpt.best))
        if is_best:
            ckpt.best.assign(score)
            self.selected = Selected(r, score, metrics[self.key])
            with writing(self.res_dir):
                write_dump(self.res_dir, metrics[self.key], records)  # the test retrieval, named by its score
            also = "" if self.chosen == self.key else f" (test Prec@{self.cfg.top_k} = {metrics[self.key]:.4f})"
            tqdm.write(f"{self.said}New best {self.metric} = {score:.4f}{also}")
            with writing(self.best.folder):
                self.best.save(ckpt, r)
        # History before the latest checkpoint: a kill between them leaves a row that the
        # resumed run drops and writes again.
        row = {"round": r, **metrics, **losses, **timings}
        with writing(self.history.path):
            self.history.append(row)
        with writing(self.log_dir), self.writer.as_default(step=r):
            for name, value in {**metrics, **losses, **timings}.items():
                tf.summary.scalar("g_loss_kl_loss" if name == "kl_loss" else name, value)
            self.writer.flush()
        fault_point("before_latest_checkpoint")
        if save_latest:
            with writing(self.latest.folder):
                self.latest.save(ckpt, r)
        shown = {f"P@{self.cfg.top_k}": metrics[self.key], f"val P@{self.cfg.top_k}": metrics.get(f"val_{self.key}"),
                 "best": float(ckpt.best)}
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items() if v is not None}, refresh=False)
        self.bar.update(1)
        return row, is_best

    def close(self):
        self.bar.close()
        self.writer.close()

    def summary(self, stopped_early):
        return {"rounds": int(self.ckpt.round), "best": float(self.ckpt.best), "test_at_best": self.selected.test,
                "stopped_early": stopped_early}


def run_rounds(model, members, steps, on_round=None, progress=True, startup=None):
    """Run (or continue) the rounds of every member until each is done, stopped early or
    diverged; returns each member's {"rounds": rounds done, "best": best score of the selection
    metric, "test_at_best": test Prec@K of the best round, "stopped_early": bool}.

    The selection metric (docs/algorithm.md §11.2) is the test Prec@K (the reference), or with
    `select: val` the validation classes' Prec@K: it decides the dump, the best/ checkpoint
    and, with `patience`, when a member stops. A member that diverges stops without stopping
    the others; Diverged is raised at the end. on_round(row, best, is_best), for a run alone,
    is called after each round's checkpoint with the round's history row ({round, prec_at_K...,
    map_at_K, [val_prec_at_K..., val_map_at_K,] losses, timings}), the best score so far and
    whether this round set it. progress: show a progress bar. startup: see `run`.
    """
    from tqdm import tqdm
    group = len(members) > 1
    bar = tqdm(initial=min(m.writer.start for m in members), total=members[0].cfg.epochs, unit="round",
               desc=f"{members[0].cfg.dataset} x{len(members)}", dynamic_ncols=True, disable=not (group and progress))
    active = [m for m in members if m.status == ACTIVE]
    try:
        with StopOnSignal() as stop, frozen_heap():
            while active:
                try:
                    done = run_round(model, active, steps, startup)
                except KeyboardInterrupt:  # a second signal, or Ctrl-C before the handler was set
                    r = min(m.next_round() for m in active)
                    raise Stopped(stop.signum or signal.SIGINT, f"stopped in round {r}, which is lost; "
                                                               f"the latest checkpoint (round {r - 1}) is kept")
                for m in active:
                    if m.status == DIVERGED and group:
                        tqdm.write(f"error: {m.label}: {m.error}", file=sys.stderr)
                recorded = []
                for m, (metrics, losses, timings, records) in done.items():
                    if m.index is not None:
                        model.to_single(m.index)  # the member's values, to checkpoint in the standalone layout
                    with writing_of(m):
                        row, is_best = m.writer.record(m.next_round(), metrics, losses, timings, records,
                                                       save_latest=not group)
                    recorded.append(m)
                    if on_round is not None:
                        on_round(row, float(m.ckpt.best), is_best)
                if group:
                    commit_latest(recorded, lambda m, folder: writing_of(m, folder))
                    bar.update(1)
                for m in recorded:
                    if m.writer.selected.patience_over(m.cfg.patience, int(m.ckpt.round)):
                        m.status = STOPPED
                    elif int(m.ckpt.round) >= m.cfg.epochs:
                        m.status = DONE
                active = [m for m in active if m.status == ACTIVE]
                if stop.signum is not None and active:
                    r = max(int(m.ckpt.round) for m in recorded) if recorded else 0
                    raise Stopped(stop.signum, f"stopped after round {r}; continue with --resume")
    finally:
        bar.close()
        for m in members:
            m.writer.close()
    for m in members:
        if m.status != DIVERGED:
            report_end(m.cfg, m.writer, m.status == STOPPED)
    diverged = [m for m in members if m.status == DIVERGED]
    if diverged:
        if not group:
            raise Diverged(diverged[0].error)
        raise Diverged(f"{len(diverged)} of {len(members)} members diverged ("
                       + "; ".join(f"{m.label} in round {m.next_round()}" for m in diverged)
                       + "): see their lines above; the others went on")
    return [m.writer.summary(m.status == STOPPED) for m in members]


@contextlib.contextmanager
def writing_of(member, path=None):
    """writing(path) for a member's file, its refusal a RunFault naming the member's run."""
    try:
        with writing(path or member.run.logs):
            yield
    except _WriteFailed as e:
        raise write_fault(e, member.run)


def report_end(cfg, rounds, stopped_early):
    """The run's last lines: why it stopped early, if it did, and its best score."""
    selected, metric, said = rounds.selected, rounds.metric, rounds.said
    if stopped_early:
        print(f"{said}Stopped early after round {int(rounds.ckpt.round)}: no new best {metric} in the {cfg.patience} "
              f"rounds since round {selected.round} (patience {cfg.patience})")
    also = ("" if rounds.chosen == rounds.key
            else f" (round {selected.round}, test Prec@{cfg.top_k} = {selected.test:.4f})")
    done = int(rounds.ckpt.round)
    print(f"{said}Done: {done} round{'s' * (done != 1)}, best {metric} = {float(rounds.ckpt.best):.4f}{also}")


def evaluate_only(cfg, dataset, prefix, run):
    """Evaluate a checkpoint (or fresh weights) once and write its dump to the run's eval/ folder."""
    model, evaluator, _, ckpt = build(cfg, dataset)
    if prefix:
        restore(ckpt, prefix)
        print(f"Evaluating {prefix} (round {int(ckpt.round)})")
    else:
        print(f"warning: no checkpoint found: evaluating freshly initialised weights (seed {cfg.seed})",
              file=sys.stderr)
    metrics, records = evaluator.evaluate()
    for name, value in metrics.items():
        print(f"{name} = {value:.4f}")
    path = write_dump(run.results_path(EVAL), metrics[run.test_key], records)
    print(f"Dump: {path}")


# --------------------------------------------------------------------------- one run


def write_run_files(cfg, run, shape):
    """What a run writes before its first round: config.yml and model_shape.yml, after
    removing what killed writes left."""
    remove_partials([run.logs, run.results, run.path(LATEST), run.path(BEST)])
    try:
        write_yaml(run.path(CONFIG_FILE), config_lib.to_save(cfg), "config")
        write_yaml(run.path(SHAPE_FILE), shape, "shape")
    except OSError as e:
        raise write_fault(_WriteFailed(e.filename or run.logs, e.strerror or str(e)), run)


def start_training(cfg, dataset, runs, resume, on_round=None, progress=True, reuse_kernels=False, startup=None):
    """Checks and files that come before the first round (holding the locks), then `run_rounds`.
    runs: the run's Run, or a group's members' Runs (cfg.seeds)."""
    group = bool(cfg.get("seeds"))
    cfgs = member_configs(cfg) if group else [cfg]
    shape = model_shape(cfg, selection.training_split(dataset, cfg.val_classes))
    for member_cfg, run in zip(cfgs, runs):
        check_can_train(resume, run, shape, member_cfg)
    t0 = time.perf_counter()
    if group:  # the model first: it must fit before anything is written
        model, members = build_group(cfg, dataset, runs)
        from zscrgan.model.em import step_counts  # only once built: a refusal starts no TensorFlow
        steps = step_counts(cfg)
        probe(model, steps)
        roll_forward(runs)
    for member_cfg, run in zip(cfgs, runs):
        write_run_files(member_cfg, run, shape)
    done = [run.rounds_done() for run in runs]
    for run, d in zip(runs, done):
        if resume and not d:
            print(f"No checkpoint to resume in {run.logs}: starting from round 1")
    if min(done) >= cfg.epochs:
        print(f"Nothing to do: {min(done)} of {cfg.epochs} rounds are done (raise --epochs to go on)")
        summaries = [{"rounds": d, **run.scores(run.selected()), "stopped_early": False} for run, d in zip(runs, done)]
        return summaries if group else summaries[0]
    if not group:
        model, evaluator, val, ckpt = build(cfg, dataset, reuse_kernels)
        members = [Member(cfg, runs[0], ckpt, evaluator, val, model)]
        from zscrgan.model.em import step_counts  # after build: TensorFlow is set up
        steps = step_counts(cfg)
    if startup is not None:
        startup.update(build_s=time.perf_counter() - t0, trace_s=0.0,
                       reused_kernels=model.e_step.experimental_get_tracing_count() > 0)
    for m in members:
        m.writer = RoundWriter(m.cfg, m.run, m.ckpt, progress, m.label)
        if m.index is not None:
            model.from_single(m.index)  # what the writer restored into the member's standalone model
        start = m.writer.start
        if m.writer.selected.patience_over(m.cfg.patience, start):
            m.status = STOPPED
            print(f"{m.writer.said}Nothing to do: the run stopped early at round {start}, "
                  f"{start - m.writer.selected.round} rounds after its best {m.writer.metric} (patience {m.cfg.patience})")
        elif start >= m.cfg.epochs:
            m.status = DONE
    summaries = run_rounds(model, members, steps, on_round, progress, startup)
    return summaries if group else summaries[0]


def run(cfg, resume=False, eval_only=False, checkpoint=None, on_round=None, progress=True, reuse_kernels=False,
        startup=None):
    """Train (or with eval_only, evaluate) one run of a resolved config, or with cfg.seeds a group
    of runs as one stacked model: the one loop that the command line, the sweep's trials and the
    benchmarks share.

    checkpoint (with eval_only): best, latest or a path; default the run's best, else its
    latest, else fresh weights. reuse_kernels (sweep trials): train with the model and
    evaluators this process traced for an earlier run of the same graphs, set to this run's
    fresh values (zscrgan/run/kept_kernels.py). startup: a dict that the run fills with where its
    start went: data_s, build_s, trace_s (seconds; trace_s is the part of round 1 that only
    traced) and reused_kernels. Returns run_rounds' summary ({"rounds", "best", "test_at_best",
    "stopped_early"}; a list of them for a group) or None after eval_only. Raises BadInput,
    Diverged, Stopped, RunFault.
    """
    if cfg.get("seeds") and eval_only:  # each member as a run of its own
        if checkpoint not in (None, BEST, LATEST):
            raise UsageError("--checkpoint with --seeds: best or latest (each member's own)")
        for member_cfg in member_configs(cfg):
            run(member_cfg, eval_only=True, checkpoint=checkpoint, progress=progress)
        return None
    runs = [Run.of(c) for c in member_configs(cfg)] if cfg.get("seeds") else [Run.of(cfg)]
    this = runs[0]
    t0 = time.perf_counter()
    cfg, dataset = load_checked(cfg)
    if startup is not None:
        startup["data_s"] = time.perf_counter() - t0
    if progress:  # a group's members each have their seed of `seeds`
        print("Resolved config:\n" + "\n".join(f"  {k}: {v}" for k, v in cfg.items() if k != "seed" or not cfg.seeds))
    if eval_only:
        prefix = (this.checkpoint(checkpoint, required=True) if checkpoint
                  else this.checkpoint(BEST) or this.checkpoint(LATEST))
    compile_cache.enable()  # before TensorFlow's runtime starts, which reads TF_XLA_FLAGS once
    try:
        with contextlib.ExitStack() as held:
            for r in runs:
                held.enter_context(r.held())
            if eval_only:
                remove_partials([this.results, this.results_path(EVAL)])
                evaluate_only(cfg, dataset, prefix, this)
                return None
            return start_training(cfg, dataset, runs, resume, on_round, progress, reuse_kernels, startup)
    except KeyboardInterrupt:  # before the rounds' own handler, or in --eval_only
        done = min(r.rounds_done() for r in runs)
        kept = f"its latest checkpoint (round {done}) is kept" if done else "no checkpoint was written"
        raise Stopped(signal.SIGINT, "interrupted " + ("before writing the dump" if eval_only else
                                                       f"before round {done + 1} began; {kept}"))
