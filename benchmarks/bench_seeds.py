"""Seeds together (`--seeds`, docs/algorithm.md §11.5) against the same seeds one after another.

    python -m benchmarks.bench_seeds [--members 1,2,4,8] [--rounds 2] [--steps N] [--paper]

On every device TensorFlow sees, for each member count M: one stacked model of seeds 0..M-1
(zscrgan/model/stacked.py) and the M standalone models of those seeds, each timed over steady
rounds (E-step + M-step after a warm-up round, as `zscrgan devices` times them), side by side in
one process.
Prints member-rounds per second of both ways and their ratio (above 1: the group is faster).
demo: the MFEAT dataset with configs/MFEAT.yml's widths. --paper: a synthetic CUB-shaped
dataset with the reference's widths (slow on a CPU). --steps N runs N E- and M-steps a round
instead of the config's (N = 100 is the reference's).
"""
import argparse
import json
import os

from benchmarks.common import ROOT, median, tf
from zscrgan.config import load_config
from zscrgan.data.dataset import Dataset, load_dataset
from zscrgan.data.synthetic import generate
from zscrgan.model.em import ZSCRGAN, step_counts
from zscrgan.model.stacked import StackedZSCRGAN, member_config
from zscrgan.run.timing import steady_round_s


def setup(paper, steps):
    flags = {"e_steps": steps, "m_steps": steps} if steps else {}
    if not paper:
        return load_config(flags={"dataset": "MFEAT", **flags}), load_dataset(os.path.join(ROOT, "datasets", "MFEAT"))
    text, images, train, test = generate("CUB", seed=0)
    return load_config(flags={"dataset": "CUB", **flags}), Dataset("CUB_SYN", text, images, train, test)


def round_seconds(models, steps, rounds):
    """Median over `rounds` of the seconds of one steady round of every model in `models`, one
    after another (run.timing.steady_round_s: the time `zscrgan devices` reports)."""
    return median([sum(steady_round_s(model, steps) for model in models) for _ in range(rounds)])


def measure(cfg, ds, device, n_members, rounds):
    """{"stacked", "one_by_one"}: member-rounds per second of n_members seeds on `device`."""
    seeds = list(range(n_members))
    with tf.device(device):
        steps = step_counts(cfg)
        stacked = StackedZSCRGAN(cfg, seeds, ds.text_dim, ds.image_dim, ds, device=device)
        together = round_seconds([stacked], steps, rounds)
        singles = [ZSCRGAN(member_config(cfg, s), ds.text_dim, ds.image_dim, ds) for s in seeds]
        apart = round_seconds(singles, steps, rounds)
    return {"stacked": n_members / together, "one_by_one": n_members / apart}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--members", default="1,2,4,8", help="member counts, comma-separated")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds per measurement (median)")
    p.add_argument("--steps", type=int, default=0, help="E- and M-steps a round (default: the config's)")
    p.add_argument("--paper", action="store_true", help="the reference's widths on synthetic CUB-shaped data")
    args = p.parse_args()
    tf.config.experimental.enable_op_determinism()
    cfg, ds = setup(args.paper, args.steps)
    devices = [d.name.replace("/physical_device:", "/device:") for d in tf.config.list_physical_devices()
               if d.device_type in ("CPU", "GPU")]
    scale = "paper" if args.paper else "demo"
    print(f"{scale} widths (gf {cfg.gf_dim}, df {cfg.df_dim}, embed {cfg.embed_dim}, z {cfg.z_dim}, "
          f"batch {cfg.batch_size}), {cfg.e_steps} x {cfg.n_critic} critic + {cfg.e_steps} generator "
          f"and {cfg.m_steps} CSEM updates a round; member-rounds per second, median of {args.rounds} rounds")
    print(f"{'device':<18}{'members':>8}{'together':>12}{'one by one':>12}{'ratio':>8}")
    record = []
    for device in devices:
        for n in [int(x) for x in args.members.split(",")]:
            got = measure(cfg, ds, device, n, args.rounds)
            ratio = got["stacked"] / got["one_by_one"]
            print(f"{device:<18}{n:>8}{got['stacked']:>12.3f}{got['one_by_one']:>12.3f}{ratio:>7.2f}x", flush=True)
            record.append({"device": device, "members": n, **got, "ratio": ratio})
    print(json.dumps({"scale": scale, "steps": [cfg.e_steps, cfg.n_critic, cfg.m_steps], "rows": record}))


if __name__ == "__main__":
    main()
