"""`zscrgan devices`: the devices TensorFlow sees, and whether each reproduces the algorithm.

    python -m zscrgan devices [--json]

For the CPU and every visible GPU (docs/gpu.md):
  golden  the golden check (zscrgan/model/golden.py) with TF32 off; on a GPU that has TF32
          also with it on, for information only;
  twice   the same tiny run twice (two fresh models of one seed: two rounds of E- and M-steps,
          then an evaluation), every variable, loss, metric and ranked image compared bit for bit;
  round   the seconds of one steady round (E- and M-step) at the demo's widths and steps
          (configs/MFEAT.yml), on synthetic data of the demo's shape.
Prints one table (or with --json one JSON record). Exit status 0 when every device passes the
golden check with TF32 off and runs twice the same, 1 otherwise, naming the device and the
worst layer or the first differing value.
"""
import json

import numpy as np

from zscrgan.errors import EXIT_FAILED, EXIT_OK

# The tiny run done twice: tests/conftest.py's tiny sizes, on a small synthetic dataset.
TINY = {"gf_dim": 8, "df_dim": 8, "embed_dim": 4, "z_dim": 2, "batch_size": 4, "e_steps": 2, "n_critic": 2,
        "m_steps": 2, "top_k": 5}
TINY_ROUNDS = 2
DEMO = "MFEAT"  # the shape and the widths of the timed round


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print one JSON record instead of the table")


def synthetic_dataset(images_per_class=None, texts_per_class=None):
    """A Dataset of the demo's shape (zscrgan/data/synthetic.py): an installed copy has no datasets."""
    from zscrgan.data import synthetic
    from zscrgan.data.dataset import Dataset
    return Dataset(f"synthetic {DEMO}", *synthetic.generate(DEMO, 0, 1.0, images_per_class, texts_per_class))


# --------------------------------------------------------------------------- the three checks


def golden_outcome(result):
    """A golden.Result as the record keeps it."""
    from zscrgan.model import golden
    worst, error = result.worst_layer()
    return {"ok": result.ok, "worst_layer": worst, "worst_error": error, "limit": golden.MAX_RELATIVE_ERROR,
            "bad_layers": result.bad_layers(), "bad_losses": result.bad_losses("init") + result.bad_losses("final")}


def tiny_run(cfg, dataset):
    """What one tiny run leaves, in a fixed order: {label: numpy array} of its rounds' mean losses,
    its evaluation (metrics and the ranked gallery classes per query) and every variable its
    checkpoint would hold (named by layer where it is a network's)."""
    from zscrgan.model.em import step_counts
    from zscrgan.run import kept_kernels, loop
    model, evaluator, _, _ = loop.build(cfg, dataset)
    steps = step_counts(cfg)
    out = {}
    for r in range(1, TINY_ROUNDS + 1):
        losses = {**model.e_step(steps[0], steps[1]), **model.m_step(steps[2])}
        out.update({f"round {r} {name}": value.numpy() for name, value in losses.items()})
    metrics, records = evaluator.evaluate()
    out.update({name: np.float64(value) for name, value in metrics.items()})
    out["ranking"] = np.array([[c, *ids] for record in records for c, ids in record.items()])
    layers = {id(getattr(layer, part)): f"{name}/{part}" for name, layer in model.nets.layers().items()
              for part in ("kernel", "bias")}
    for i, var in enumerate(kept_kernels.state(model)):
        out[layers.get(id(var), f"variable {i} ({var.name.split(':')[0]})")] = var.numpy()
    return out


def first_difference(a, b):
    """None when two tiny runs' outputs are the same bits, else where they first differ (one line)."""
    for label in a:
        x, y = np.asarray(a[label]), np.asarray(b.get(label))
        if x.shape != y.shape or x.dtype != y.dtype:
            return f"{label}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}"
        bits = lambda v: np.ascontiguousarray(v).reshape(-1).view(np.uint8).reshape(v.size, -1)
        differ = np.flatnonzero(np.any(bits(x) != bits(y), axis=1)) if x.size else []
        if len(differ):
            i = differ[0]
            where = [int(j) for j in np.unravel_index(i, x.shape)] if x.ndim else ""
            return f"{label}{where}: {str(x.reshape(-1)[i])} vs {str(y.reshape(-1)[i])}"
    return None


def reproduces(cfg, dataset):
    """The tiny run twice: None when both are the same bits, else the first differing value."""
    return first_difference(tiny_run(cfg, dataset), tiny_run(cfg, dataset))


def round_seconds(cfg, dataset):
    """Seconds of one steady round of a fresh model of cfg on dataset."""
    from zscrgan.model.em import ZSCRGAN, step_counts
    from zscrgan.run.timing import steady_round_s
    return steady_round_s(ZSCRGAN(cfg, dataset.text_dim, dataset.image_dim, dataset), step_counts(cfg))


def check_device(device, g, tiny, demo):
    """The record of one device (a PhysicalDevice): its golden check (and TF32's, on a GPU that
    has it), whether the tiny run is the same twice, and the seconds of a steady demo round."""
    import tensorflow as tf
    from zscrgan.model import golden
    from zscrgan.run import devices
    name = devices.short_name(device)
    record = {"device": name, "description": devices.describe(device)}
    with tf.device(f"/{name}"):
        record["golden"] = golden_outcome(golden.check(g))
        record["golden_tf32"] = None
        if device.device_type == "GPU" and devices.supports_tf32(device):
            tf.config.experimental.enable_tensor_float_32_execution(True)
            try:
                record["golden_tf32"] = golden_outcome(golden.check(g))
            finally:
                tf.config.experimental.enable_tensor_float_32_execution(bool(tiny[0].tf32))
        difference = reproduces(*tiny)
        record.update(reproducible=difference is None, first_difference=difference, round_s=round_seconds(*demo))
    record["failures"] = failures(record)
    return record


def failures(record):
    """What a device's record fails, one line each (the TF32 check is information only)."""
    found = []
    if not record["golden"]["ok"]:
        g = record["golden"]
        found.append(f"{record['device']}: the golden check fails: {g['worst_layer']} differs from the reference by "
                     f"{g['worst_error']:.2e} of its update (limit {g['limit']:.0e})"
                     + (f"; losses {', '.join(g['bad_losses'])} differ" if g["bad_losses"] else ""))
    if not record["reproducible"]:
        found.append(f"{record['device']}: the same run twice differs first at {record['first_difference']}")
    return found


# --------------------------------------------------------------------------- the command


def table(report):
    """The report as the console shows it."""
    def golden_cell(g):
        return "n/a" if g is None else f"{'ok' if g['ok'] else 'FAILS'} (worst {g['worst_layer']} {g['worst_error']:.1e})"

    rows = [("device", "golden check (TF32 off)", "TF32 on (information)", "same run twice", "steady round")]
    for r in report["devices"]:
        rows.append((r["description"], golden_cell(r["golden"]), golden_cell(r["golden_tf32"]),
                     "identical" if r["reproducible"] else "DIFFERS", f"{r['round_s']:.2f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if not report["gpus"]:
        lines.append("no GPU visible")
    lines += [f"TensorFlow {report['tensorflow']}, golden vector {report['golden_vector']}",
              f"steady round: {report['round']}"]
    failed = [line for r in report["devices"] for line in r["failures"]]
    lines += failed or [f"every device reproduces the golden vector and itself"]
    return "\n".join(lines)


def main(args):
    """devices: see the module docstring; returns the exit status."""
    import tensorflow as tf
    from zscrgan import config as config_lib
    from zscrgan.model import golden
    from zscrgan.run import devices

    tiny_cfg = config_lib.load_config(flags={"dataset": "synthetic", **TINY})
    devices.configure(tiny_cfg)  # before any GPU is used, as every run's process does
    tf.config.experimental.enable_op_determinism()
    g = golden.load()
    tiny = tiny_cfg, synthetic_dataset(images_per_class=6, texts_per_class=3)
    demo_cfg = config_lib.load_config(flags={"dataset": DEMO})
    demo = demo_cfg, synthetic_dataset()
    found = [d for d in tf.config.list_physical_devices() if d.device_type in ("CPU", "GPU")]
    report = {"tensorflow": tf.__version__, "golden_vector": golden.vector_path(),
              "round": (f"one E- and M-step at {DEMO}'s widths (gf_dim {demo_cfg.gf_dim}, df_dim {demo_cfg.df_dim}, "
                        f"embed_dim {demo_cfg.embed_dim}, z_dim {demo_cfg.z_dim}, batch {demo_cfg.batch_size}; "
                        f"{demo_cfg.e_steps} x ({demo_cfg.n_critic} critic + 1 generator) and {demo_cfg.m_steps} CSEM "
                        f"updates) on synthetic data"),
              "gpus": sum(d.device_type == "GPU" for d in found),
              "devices": [check_device(d, g, tiny, demo) for d in found]}
    report["ok"] = not any(r["failures"] for r in report["devices"])
    print(json.dumps(report) if args.json else table(report))
    return EXIT_OK if report["ok"] else EXIT_FAILED
