"""Training throughput: fused E/M-step kernels (XLA on and off) against step-by-step updates.

    python -m benchmarks.bench_train [--scales demo,paper] [--repeats 3]

demo: the MFEAT dataset with configs/MFEAT.yml (gf_dim 256, df_dim 256, embed_dim 128, z_dim 32).
paper: a synthetic CUB-shaped dataset with the reference's dimensions (gf_dim 2048, df_dim 1024,
embed_dim 1024, z_dim 256, 1024-d text, 2048-d images, batch 32); rounds are run with
--paper_steps E- and M-steps and scaled to the reference's 100 + 100.
"Step-by-step" runs every update as its own compiled call fed from NumPy on the host, the way
the reference ran one session.run per update. All numbers come from one run, side by side.
Prints a table and one JSON line.
"""
import argparse
import json
import os
import time

from benchmarks.common import ROOT, batch32_shapes, eval_flops, matmul_rate, median, np, round_flops, tf
from easydict import EasyDict
from zscrgan.config import load_config
from zscrgan.data.dataset import Dataset, load_dataset
from zscrgan.model.evaluation import Evaluator
from zscrgan.data.synthetic import generate
from zscrgan.model.em import ZSCRGAN, step_counts


def scale_setup(scale, paper_steps):
    if scale == "demo":
        cfg = load_config(flags={"dataset": "MFEAT"})
        return cfg, load_dataset(os.path.join(ROOT, "datasets", "MFEAT"))
    cfg = load_config(flags={"dataset": "CUB", "e_steps": paper_steps, "m_steps": paper_steps})
    text, images, train, test = generate("CUB", seed=0)
    return cfg, Dataset("CUB_SYN", text, images, train, test)


def time_fused(cfg, ds, jit, repeats):
    cfg = EasyDict(dict(cfg, jit_compile=jit))
    model = ZSCRGAN(cfg, ds.text_dim, ds.image_dim, ds)
    evaluator = Evaluator(ds, model.nets, model.rng, cfg["top_k"], cfg["eval_ks"], cfg["eval_chunk"])
    e, n, m = step_counts(cfg)
    model.e_step(e, n), model.m_step(m), evaluator.evaluate()   # compile
    times = {"e": [], "m": [], "eval": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        float(model.e_step(e, n)["d_loss"])
        t1 = time.perf_counter()
        float(model.m_step(m)["csem_loss"])
        t2 = time.perf_counter()
        evaluator.evaluate()
        t3 = time.perf_counter()
        times["e"].append(t1 - t0), times["m"].append(t2 - t1), times["eval"].append(t3 - t2)
    return {k: median(v) for k, v in times.items()}


class HostSampler:
    """The reference's way: batches and noise drawn with NumPy on the host."""

    def __init__(self, ds, cfg, seed=0):
        self.rng = np.random.default_rng(seed)
        self.ds, self.cfg = ds, cfg
        self.cursor = {c: 0 for c in ds.train_ids}

    def truncated(self, shape):
        x = self.rng.standard_normal(shape, dtype=np.float32)
        while np.any(np.abs(x) > 2):
            bad = np.abs(x) > 2
            x[bad] = self.rng.standard_normal(bad.sum(), dtype=np.float32)
        return x

    def batch(self):
        B, E, Z = self.cfg.batch_size, self.cfg.embed_dim, self.cfg.z_dim
        classes = self.rng.choice(self.ds.train_ids, B, replace=len(self.ds.train_ids) < B)
        v = []
        for c in classes:
            self.cursor[c] = (self.cursor[c] + 1) % len(self.ds.images[c])
            v.append(self.ds.images[c][self.cursor[c]])
        t = np.stack([self.ds.text[c][0] for c in classes])
        return (np.stack(v), t, self.truncated((B, E)), self.truncated((B, E)),
                self.rng.standard_normal((B, Z), dtype=np.float32),
                self.rng.standard_normal((B, Z), dtype=np.float32))


def time_step_by_step(cfg, ds, repeats):
    model = ZSCRGAN(cfg, ds.text_dim, ds.image_dim, ds)
    jit = cfg.jit_compile

    @tf.function(jit_compile=jit)
    def critic(v, t, eps, eps_w, z, z1):
        return model.critic_update(v, t, model.generate(t, eps, z)[0])

    @tf.function(jit_compile=jit)
    def generator(v, t, eps, eps_w, z, z1):
        return model.generator_update(v, t, eps, eps_w, z, z1)["g_loss"]

    @tf.function(jit_compile=jit)
    def csem(v, t, eps, eps_w, z, z1):
        f, c1, _, _ = model.generate(t, eps, z)
        return model.csem_update(f, c1, model.generate(tf.roll(t, 1, axis=0), eps_w, z1)[0])

    host = HostSampler(ds, cfg)
    for fn in (critic, generator, csem):
        float(fn(*host.batch()))
    e_times, m_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(cfg.e_steps):
            for _ in range(cfg.n_critic):
                float(critic(*host.batch()))
            float(generator(*host.batch()))
        t1 = time.perf_counter()
        for _ in range(cfg.m_steps):
            float(csem(*host.batch()))
        e_times.append(t1 - t0), m_times.append(time.perf_counter() - t1)
    return {"e": median(e_times), "m": median(m_times)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="demo,paper")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paper_steps", type=int, default=10,
                        help="E- and M-steps per measured paper-scale round (scaled to 100)")
    args = parser.parse_args()
    results = []
    for scale in args.scales.split(","):
        cfg, ds = scale_setup(scale, args.paper_steps)
        scale_to = 100 / cfg.e_steps
        rate = matmul_rate(batch32_shapes(cfg))
        e_flops, m_flops = round_flops(cfg, ds.text_dim, ds.image_dim)
        n_q = sum(len(ds.text[c]) for c in ds.test_ids)
        n_g = sum(len(ds.images[c]) for c in ds.test_ids)
        ev_flops = eval_flops(cfg, ds.text_dim, ds.image_dim, n_q, n_g)
        updates = cfg.e_steps * (cfg.n_critic + 1) + cfg.m_steps
        rows = {}
        for jit in (True, False):
            rows[f"fused, XLA {'on' if jit else 'off'}"] = time_fused(cfg, ds, jit, args.repeats)
        default_mode = f"fused, XLA {'on' if cfg.jit_compile else 'off'}"
        rows["step-by-step"] = time_step_by_step(cfg, ds, max(1, args.repeats - 1))
        rows["step-by-step"]["eval"] = rows[default_mode]["eval"]
        print(f"\n{scale}: T={ds.text_dim} I={ds.image_dim} E={cfg.embed_dim} Z={cfg.z_dim} "
              f"gf={cfg.gf_dim} df={cfg.df_dim} B={cfg.batch_size}; {updates} updates measured per round"
              f"{'' if scale_to == 1 else f', times scaled x{scale_to:g} to 100+100 steps'}; "
              f"batch-32 matmul rate {rate:.1f} GFLOP/s")
        print(f"  {'mode':<18}{'E-step s':>10}{'M-step s':>10}{'eval s':>8}{'round s':>9}"
              f"{'updates/s':>11}{'GFLOP/s':>9}{'/matmul':>9}")
        for mode, t in rows.items():
            train_s = t["e"] + t["m"]
            gflops = (e_flops + m_flops) / train_s / 1e9
            round_s = scale_to * train_s + t["eval"]
            print(f"  {mode:<18}{scale_to * t['e']:>10.3f}{scale_to * t['m']:>10.3f}{t['eval']:>8.3f}"
                  f"{round_s:>9.3f}{updates / train_s:>11.0f}{gflops:>9.1f}{gflops / rate:>9.2f}")
            results.append({"scale": scale, "mode": mode, "e_step_s": scale_to * t["e"],
                            "m_step_s": scale_to * t["m"], "eval_s": t["eval"], "round_s": round_s,
                            "updates_per_s": updates / train_s, "gflops": gflops,
                            "matmul_gflops": rate, "ratio_to_matmul": gflops / rate,
                            "eval_gflops": ev_flops / t["eval"] / 1e9})
        fused_best = min(rows[m]["e"] + rows[m]["m"] for m in rows if m.startswith("fused"))
        step = rows["step-by-step"]["e"] + rows["step-by-step"]["m"]
        print(f"  fused (best) / step-by-step: {step / fused_best:.2f}x faster; "
              f"training FLOPs per round {scale_to * (e_flops + m_flops) / 1e12:.3f} TFLOP")
    print(json.dumps({"bench": "train", "results": results}))


if __name__ == "__main__":
    main()
