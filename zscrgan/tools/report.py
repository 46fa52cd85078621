"""`zscrgan report`: summarise a sweep over seeds and settings, or plot one run's history.

    python -m zscrgan report DIR                        a sweep's folder (python -m zscrgan sweep --out DIR)
    python -m zscrgan report ckt_logs/CUB_logs[/NAME]   one run's logs folder (it holds history.csv)
    python -m zscrgan report RUN RUN ... [--out DIR]    several runs summarised as a sweep's seeds

A sweep's report (results.csv, summary.csv, summary.md, plots/) is zscrgan.sweeps.report's. For
one run's logs folder it writes <folder>/plots/history.png and prints the best round. Bad
input (a folder with neither trials nor a history, an unreadable file) is one `error:` line
and exit status 2, and nothing is written.
"""
import os
import re

from zscrgan.data.dataset import DatasetError, dataset_folder, eval_split, load_dataset
from zscrgan.errors import UsageError
from zscrgan.files import check_new_folder
from zscrgan.results.dumps import name_score
from zscrgan.results.history import HISTORY_FILE, map_column, prec_column
from zscrgan.results.run import PLOTS, Run
from zscrgan.sweeps.report import REPORT_FILES, ReportError, runs_table, score_columns, write_report
from zscrgan.toolkit import pictures


def plot_history(path, run, columns, rows, name="", chance=None):
    """One run: Prec@K (and validation Prec@K) and mAP@K per round above, with the chance Prec@K
    when known, one small panel per loss below."""
    plt, k = pictures.pyplot(), run.top_k
    losses = [c for c in ("d_loss", "g_loss", "kl_loss", "csem_loss") if c in columns]
    fig = plt.figure(figsize=(12, 6.5))
    grid = fig.add_gridspec(2, max(1, len(losses)), height_ratios=(1.4, 1))
    ax = fig.add_subplot(grid[0, :])
    rounds = [r["round"] for r in rows]
    for column in [c for c in columns if re.fullmatch(r"(val_)?(prec|map)_at_\d+", c)]:
        ax.plot(rounds, [r.get(column) for r in rows], "--" if column.startswith("val") else "-", label=column,
                marker="o" if len(rows) == 1 else None)
    chosen = run.selected(rows)
    if chosen is not None:
        ax.axvline(chosen["round"], color="tab:purple", linestyle="-.", alpha=0.7,
                   label=f"selected round {chosen['round']} ({run.select}: {run.selection_key} "
                         f"{chosen[run.selection_key]:.4f})")
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", label=f"chance Prec@{k} {chance:.3f}")
    ax.set(xlabel="round", ylabel="score (unseen classes)", title=f"{name}: Prec@{k} and mAP@{k} per round".lstrip(": "))
    ax.grid(alpha=0.3)
    pictures.whole_rounds(ax)
    pictures.legend_beside(ax)
    for i, column in enumerate(losses):
        loss_ax = fig.add_subplot(grid[1, i])
        loss_ax.plot(rounds, [r.get(column) for r in rows], color="tab:gray", marker="o" if len(rows) == 1 else None)
        loss_ax.set(title=column, xlabel="round")
        loss_ax.grid(alpha=0.3)
        pictures.whole_rounds(loss_ax)
    fig.tight_layout()
    pictures.save(fig, path)


def chance_prec(run):
    """The expected Prec@K of a random ranking of the run's unseen gallery, or None when its
    config.yml names no dataset or the dataset cannot be loaded (the plot then goes without it)."""
    from zscrgan.model.baselines import chance
    if not (run.saved or {}).get("dataset"):
        return None
    try:
        dataset = load_dataset(dataset_folder(run.datasets_dir, run.saved["dataset"]))
    except DatasetError:
        return None
    _, query_labels, _, gallery_labels = eval_split(dataset)
    return chance(gallery_labels, query_labels, run.top_k)[0]


def report_run(folder):
    """One run's logs folder: write plots/history.png, return a short summary."""
    run = Run.at(folder)
    columns, rows = run.history(missing_ok=False)
    k = run.top_k
    if prec_column(k) not in columns:
        raise ReportError(f"{run.history_path} has no {prec_column(k)} column (the run's top_k)")
    os.makedirs(run.path(PLOTS), exist_ok=True)
    path = os.path.join(run.path(PLOTS), "history.png")
    plot_history(path, run, columns, rows, " ".join(str(run.cfg[c]) for c in ("dataset", "run_name") if run.cfg.get(c)),
                 chance_prec(run))
    scores = score_columns(run, rows)
    lines = [f"run       {folder}", f"rounds    {len(rows)}"]
    if not scores:
        lines.append(f"best round: none (no round has a prec_at_{k} yet)")
    else:
        best = run.best_test(rows)
        mean_ap = "" if best.get(map_column(k)) is None else f", {map_column(k)} = {best[map_column(k)]:.4f}"
        lines.append(f"best round: {best['round']} ({prec_column(k)} = {best[prec_column(k)]:.4f}{mean_ap})")
    if "best_val_round" in scores:
        lines.append(f"best validation round: {scores['best_val_round']} (val_prec_at_{k} = "
                     f"{_score(scores[f'val_prec_at_{k}'])}, "
                     f"prec_at_{k} = {_score(scores[f'test_prec_at_{k}_at_best_val'])})")
    lines.append(f"plot      {path}")
    return "\n".join(lines)


def _score(value):
    """A score on the console: 4 decimals (the files keep every digit), '-' for none."""
    return "-" if value is None else f"{value:.4f}"


def add_arguments(p):
    p.add_argument("dir", nargs="+", metavar="DIR",
                   help="a sweep's --out folder, or one run's logs folder (holding history.csv), or several "
                        "run folders to summarise as a sweep's seeds (e.g. the members of a --seeds group)")
    p.add_argument("--out", metavar="DIR", help="with several run folders: write results.csv, summary.csv, "
                                                "summary.md and plots/ there (default: print the table only)")
    p.add_argument("--no_baselines", action="store_true", help="skip the ridge, CCA and chance baselines")


def _not_a_folder(path):
    """ReportError for a file given where report takes a folder, saying what the file is."""
    hint = (f"a retrieval dump: read it with `zscrgan inspect {path}`" if name_score(path) else
            f"a history: give its folder, `zscrgan report {os.path.dirname(path) or '.'}`"
            if os.path.basename(path) == HISTORY_FILE else "a file")
    return ReportError(f"{path} is {hint}, not a folder (report takes a sweep's --out folder or a run's logs folder)")


def report_runs(folders, out, baselines):
    """Several run folders summarised as a sweep's seeds: the table, and the files with `out`."""
    for folder in folders:
        if os.path.isfile(folder):
            raise _not_a_folder(folder)
        if not os.path.isfile(os.path.join(folder, HISTORY_FILE)):
            raise ReportError(f"{folder} is not a run's logs folder (it holds no {HISTORY_FILE}): give run folders, "
                              "or one sweep's --out folder alone")
    if out is None:
        print(runs_table(folders))
        print("\ngive --out DIR to write results.csv, summary.csv, summary.md and plots/ (with the baselines)")
        return
    check_new_folder(out, ignore=REPORT_FILES, way="give a new folder, or the folder of an earlier report of these runs")
    print(write_report(out, baselines=baselines, runs=folders))
    print(_wrote(out))


def _wrote(folder):
    """The last line of a report written to `folder`."""
    return (f"\nwrote {', '.join(os.path.join(folder, f) for f in ('results.csv', 'summary.csv', 'summary.md'))} "
            f"and {os.path.join(folder, PLOTS)}/")


def main(args):
    if len(args.dir) > 1:
        report_runs(args.dir, args.out, not args.no_baselines)
        return 0
    if args.out:
        raise UsageError("--out is for several run folders; a sweep's report goes to its folder, a run's plot to "
                         "its plots/")
    folder, = args.dir
    if os.path.isfile(os.path.join(folder, HISTORY_FILE)):
        print(report_run(folder))
        return 0
    if os.path.isfile(folder):
        raise _not_a_folder(folder)
    print(write_report(folder, baselines=not args.no_baselines))
    print(_wrote(folder))
    return 0
