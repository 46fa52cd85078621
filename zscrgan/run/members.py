"""The members of the one loop: a run alone, or a group of runs trained as one stacked model
(--seeds, docs/algorithm.md §11.5). A member is an ordinary run: its own config (its seed, its
run name `seed<k>[_<name>]`), folders, evaluators and checkpoint, in the standalone layout.

For a group: the stacked model, a memory probe before anything is written, and the group's
latest checkpoints committed together: every member's is written whole before any member's
folder points at it (`commit_latest`), so after a kill the members either all point at the
same round or the ones behind hold that round's whole checkpoint and are moved on to it
(`roll_forward`) when the group resumes.
"""
import dataclasses

from easydict import EasyDict

from zscrgan.data import selection
from zscrgan.errors import BadInput
from zscrgan.results.run import LATEST, member_name
from zscrgan.run import compile_cache
from zscrgan.run.steps import checkpoint_of, compiled, e_step_tracing_m_step, setup_tensorflow

ACTIVE, DONE, STOPPED, DIVERGED = "active", "done", "stopped early", "diverged"


def member_configs(cfg):
    """The configs of a group's members (cfg.seeds): the group's with each member's seed and run
    name and no seeds, as `--seed k --run_name seed<k>[_<name>]` alone resolves them."""
    return [EasyDict({**cfg, "seed": int(seed), "run_name": member_name(seed, cfg.run_name), "seeds": None})
            for seed in cfg.seeds]


# The networks a step kind updates (as a divergence message names them): their variables' group.
VARIABLES = {"critic": "d_vars", "generator": "g_vars", "CSEM": "f_vars"}


@dataclasses.dataclass(eq=False)  # members are compared and hashed by identity
class Member:
    """One run of the loop. model: the ZSCRGAN it trains, or the stacked model it is slice
    `index` of (index None: a model of its own)."""
    cfg: EasyDict
    run: object
    ckpt: object
    evaluator: object
    val: object
    model: object
    index: int = None
    label: str = ""
    writer: object = None
    status: str = ACTIVE
    error: str = None

    def losses(self, out):
        """This member's floats of a step's {name: loss} (scalars, or (M,) arrays for a group)."""
        return {k: float(v if self.index is None else v[self.index]) for k, v in out.items()}

    def weights(self, kind):
        """This member's variables (or slices of the stacked ones) of a step kind (VARIABLES)."""
        variables = getattr(self.model, VARIABLES[kind])
        return variables if self.index is None else [v[self.index] for v in variables]

    def next_round(self):
        return int(self.ckpt.round) + 1


def build_group(cfg, dataset, runs):
    """(stacked model, [Member]) of a group: the StackedZSCRGAN of cfg.seeds on the training
    split, each member with its evaluators (one shared copy of each split) and a checkpoint of
    its standalone model."""
    import tensorflow as tf
    from zscrgan.model.stacked import StackedZSCRGAN

    setup_tensorflow(cfg)
    device = "/device:GPU:0" if tf.config.list_logical_devices("GPU") else "/device:CPU:0"
    model = StackedZSCRGAN(cfg, cfg.seeds, dataset.text_dim, dataset.image_dim,
                           selection.training_split(dataset, cfg.val_classes), device,
                           remembered=compile_cache.Remembered("stacked_ops"))
    tests = model.evaluators(dataset)
    vals = model.evaluators(dataset, cfg.val_classes) if cfg.val_classes else [None] * model.M
    members = []
    for k, (member_cfg, run) in enumerate(zip(member_configs(cfg), runs)):
        members.append(Member(member_cfg, run, checkpoint_of(model.singles[k]), tests[k], vals[k], model,
                              index=k, label=member_cfg.run_name))
    return model, members


def probe(model, steps):
    """Run one E- and M-step and put every variable back: BadInput naming the member count when
    the group does not fit in the device's memory (TensorFlow's ResourceExhaustedError), before
    anything is written. The steps are compiled meanwhile, for round 1."""
    import tensorflow as tf
    from zscrgan.run.kept_kernels import state as variables
    state = variables(model)
    saved = [v.numpy() for v in state]
    try:
        compiled(model, lambda m: e_step_tracing_m_step(m, *steps))
        compiled(model, lambda m: m.m_step(steps[2]))
    except tf.errors.ResourceExhaustedError as e:
        first = str(e.message).strip().splitlines()[0] if str(e.message).strip() else "out of memory"
        raise BadInput(f"{model.M} members do not fit in the device's memory ({first}): train fewer seeds at "
                       f"once (e.g. --seeds {','.join(map(str, model.seeds[:max(1, model.M // 2)]))}, then the "
                       "others), or smaller networks")
    for v, value in zip(state, saved):
        v.assign(value)


def roll_forward(runs):
    """After a kill while a group committed its latest checkpoints: point every member that
    holds a whole checkpoint of the newest round any member points at, but does not point at
    it yet, at that checkpoint (every member's was written whole before any was pointed at)."""
    slots = [run.slot(LATEST) for run in runs]
    pointed = [slot.current() for slot in slots]
    rounds = [int(p.rsplit("-", 1)[1].split("_")[0]) for p in pointed if p]
    if not rounds:
        return
    newest = max(rounds)
    for slot in slots:
        stem = slot.staged(newest)
        if stem is not None:
            slot.point(stem)
            slot.prune(stem)


def commit_latest(members, writing):
    """Save the latest checkpoint of each member that recorded a round, as a group: all written
    whole, then all pointed at, then the old ones removed. writing(member, folder): the
    context that turns an OS refusal into a run fault of that member."""
    staged = []
    for m in members:
        with writing(m, m.writer.latest.folder):
            staged.append(m.writer.latest.stage(m.ckpt, int(m.ckpt.round)))
    for m, stem in zip(members, staged):
        with writing(m, m.writer.latest.folder):
            m.writer.latest.point(stem)
    for m, stem in zip(members, staged):
        m.writer.latest.prune(stem)
