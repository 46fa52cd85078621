"""`zscrgan train` and `python run_exp.py`: train ZSCRGAN on one dataset.

    python run_exp.py --dataset NAME [--option VALUE ...]
    python run_exp.py --dataset NAME --resume       continue the run from its latest checkpoint
    python run_exp.py --dataset NAME --eval_only    evaluate its best checkpoint, write the dump

Parses the flags (every key of configs/default.yml is one), resolves the config (with
--resume or --eval_only the run's own config.yml is the base) and calls `zscrgan.run.loop.run`.
"""
import os

from zscrgan.errors import UsageError


def add_arguments(parser):
    """train's flags: the reference's plus the project's; every config key is a flag."""
    from zscrgan import config as config_lib
    parser.description = "Train ZSCRGAN (CIKM 2020) on one dataset."
    parser.epilog = ("Defaults are those of configs/default.yml, where each option is described; "
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
    parser.add_argument("--checkpoint", metavar="best|latest|PATH",
                        help="with --eval_only: best, latest, a checkpoint prefix (.../best/ckpt-7) or a folder "
                             "holding one; default: the run's best, else its latest, else fresh weights")
    for key, (metavar, text) in config_lib.flag_help().items():
        parser.add_argument(f"--{key}", dest=key, default=None, metavar=metavar, help=text)


def resolve_config(config_file, flags, saved_file):
    """The run's config: the saved config.yml of an earlier run (if any) as the base, then the
    keys set by `--config` and flags. Returns (cfg, [changed keys])."""
    from zscrgan import config as config_lib
    cfg = config_lib.load_config(config_file=config_file, flags=flags)
    if not saved_file or not os.path.isfile(saved_file):
        return cfg, []
    saved = config_lib.load_config(config_file=saved_file, flags={"dataset": cfg.dataset})
    explicit = set(flags)
    if config_file:
        explicit |= set(config_lib.read_file(config_file))
    explicit.add("logs_dir")  # where the run was found, even if it was moved
    changed = [k for k in explicit if saved[k] != cfg[k]]
    for key in explicit:
        saved[key] = cfg[key]
    return saved, sorted(changed)


def main(args):
    """train: resolve the config (the run's own config.yml first with --resume/--eval_only), run."""
    from zscrgan.results.run import CONFIG_FILE, Run
    from zscrgan.run import loop
    from zscrgan.run.members import member_configs
    if args.checkpoint and not args.eval_only:
        raise UsageError("--checkpoint needs --eval_only")
    if args.resume and args.eval_only:
        raise UsageError("--resume and --eval_only do not go together")
    special = {"config", "resume", "eval_only", "checkpoint", "tool", "func"}
    flags = {k: v for k, v in vars(args).items() if k not in special and v is not None}
    cfg, _ = resolve_config(args.config, flags, None)
    if args.resume or args.eval_only:
        group = {k: cfg[k] for k in ("seeds", "seed", "run_name")} if cfg.seeds else {}
        first = member_configs(cfg)[0] if cfg.seeds else cfg  # a group's members share all but seed and name
        cfg, changed = resolve_config(args.config, flags, Run.of(first).path(CONFIG_FILE))
        cfg.update(group)
        changed = [k for k in changed if k not in group]
        if changed and args.resume:
            print(f"Resuming with changed settings: {', '.join(changed)}")
    loop.run(cfg, args.resume, args.eval_only, args.checkpoint)
    return 0
