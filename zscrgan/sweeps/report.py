"""A sweep's report: its trials summarised over seeds and settings, as tables and plots.

The trials are found by their status files, DIR/logs/<D>_logs/<trial>/status.yml; each
trial's config.yml and history.csv give its scores. `write_report(DIR)` writes
- DIR/results.csv: one row per trial: dataset, seed, grid values, status, rounds, seconds, the
  best round (highest test Prec@K, earliest on ties) with its Prec@K and the mAP@K of the
  selected round (with `select: val`: also the round of the best validation Prec@K and the test
  Prec@K there);
- DIR/summary.csv and DIR/summary.md: per dataset and setting (the grid's values), the counts of
  finished, stopped and failed trials, and over the finished seeds the mean, sample standard
  deviation (ddof = 1; none for a single seed), min and max of those scores, beside the ridge
  and CCA baselines of zscrgan.model.baselines fitted with the same seeds and chance (computed
  once: zscrgan.sweeps.baseline_cache keeps them in DIR/.baselines/);
- DIR/plots/<D>[_<setting>].png: Prec@K per round, mean over seeds with a min-max band, and
  DIR/plots/summary.png: every dataset and setting with error bars and the baselines marked.
Bad input (a folder without trials, an unreadable file) raises ReportError, nothing written.
TensorFlow is imported only for the baselines.
"""
import csv
import io
import os
import re

import numpy as np

from zscrgan.errors import BadInput
from zscrgan.files import atomic_write
from zscrgan.results.dumps import best_named_dump
from zscrgan.results.history import map_column, prec_column
from zscrgan.results.run import PLOTS, Run
from zscrgan.results.trials import Trial, setting_label, trial_folders, value_text
from zscrgan.sweeps.baseline_cache import CACHE, Baselines
from zscrgan.toolkit import pictures

BASELINES = ("ridge", "cca")  # the keys of zscrgan.model.baselines' rows, and the columns' prefixes


# What a report writes into its folder.
REPORT_FILES = ("results.csv", "summary.csv", "summary.md", PLOTS, CACHE)


class ReportError(BadInput, ValueError):
    """A folder or file the report cannot read; the message says which and why."""


# --------------------------------------------------------------------------- reading runs


def score_columns(run, rows):
    """results.csv's score columns of a run, from its history rows and the results layer's rule
    (docs/algorithm.md §11.2), of two rounds: the best test round (the reference's protocol:
    best_round, best_prec_at_K) and the selected round (map_at_K; with `select: val` also
    best_val_round, val_prec_at_K, test_prec_at_K_at_best_val). {} when no round is scored yet.
    """
    k = run.top_k
    best = run.best_test(rows)
    if best is None:
        return {}
    selected = run.selected(rows)
    chosen = selected or best
    out = {"best_round": best["round"], f"best_{prec_column(k)}": best[prec_column(k)],
           map_column(k): chosen.get(map_column(k))}
    if run.select == "val" and selected is not None:
        out.update({"best_val_round": chosen["round"], prec_column(k, val=True): chosen[prec_column(k, val=True)],
                    f"test_{prec_column(k)}_at_best_val": chosen.get(prec_column(k))})
    return out


def _record(folder, run, rows, dataset, seed, trial, status, grid=None, **status_fields):
    """A report's record of one trial: who it is, its status fields, its history rows and scores."""
    return {"folder": folder, "dataset": str(dataset), "seed": seed, "grid": dict(grid or {}), "trial": trial,
            "status": status, **dict.fromkeys(("error", "rounds_done", "seconds", "attempts", "node")),
            **status_fields, "datasets_dir": run.cfg["datasets_dir"], "k": run.top_k if rows else None,
            "rows": rows, "scores": score_columns(run, rows)}


def read_trial(folder):
    """A sweep trial, from its logs folder: its status.yml fields, run, history rows, K and scores."""
    status = Trial.read(folder).status
    run = Run.at(folder)
    return _record(folder, run, run.history()[1], status["dataset"], status["seed"],
                   status.get("trial") or os.path.basename(folder), status["status"], status.get("grid"),
                   **{f: status.get(f) for f in ("error", "rounds_done", "seconds", "attempts", "node")})


def read_run(folder):
    """A run's logs folder as a trial of a report (several runs summarised as a sweep's seeds):
    finished when it has nothing left to do, else stopped (counted, not averaged)."""
    run = Run.at(folder)
    return _record(folder, run, run.history(missing_ok=False)[1], run.cfg["dataset"], run.cfg["seed"],
                   run.cfg.get("run_name") or os.path.basename(os.path.normpath(folder)),
                   "finished" if run.finished() else "stopped", rounds_done=run.rounds_done())


def read_runs(folders):
    """read_run of each folder, ordered by dataset and seed."""
    return sorted((read_run(folder) for folder in folders), key=lambda t: (t["dataset"], _order(t["seed"])))


def runs_table(folders):
    """The summary table of several run folders, without the baselines; nothing is written."""
    groups = groups_of(read_runs(folders))
    return summary_table(groups, summarise(groups))


def find_trials(out_dir):
    """Every trial of the sweep in out_dir, ordered by dataset, setting and seed."""
    trials = [read_trial(folder) for folder in trial_folders(out_dir)]
    return sorted(trials, key=lambda t: (t["dataset"], _grid_order(t["grid"]), _order(t["seed"]), t["trial"]))


def _order(value):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


def _grid_order(grid):
    return [(key, _order(value)) for key, value in grid.items()]


# --------------------------------------------------------------------------- statistics


def stats(values):
    """(mean, sample std (ddof 1, None for one value), min, max) of the values that are not None."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None, None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std, float(min(values)), float(max(values))


def _stat_columns(prefix, values):
    mean, std, low, high = stats(values)
    return {f"{prefix}_mean": mean, f"{prefix}_std": std, f"{prefix}_min": low, f"{prefix}_max": high}


def groups_of(trials):
    """{(dataset, setting text): [its trials]}, in the trials' order."""
    groups = {}
    for t in trials:
        groups.setdefault((t["dataset"], setting_label(t["grid"])), []).append(t)
    return groups


def summarise(groups, baselines=None):
    """One summary row per dataset and setting, with statistics over its finished trials."""
    out = []
    for (dataset, _), group in groups.items():
        k = next((t["k"] for t in group if t["k"]), None)
        done = [t for t in group if t["status"] == "finished"]
        row = {"dataset": dataset, **group[0]["grid"], "top_k": k, "trials": len(group), "finished": len(done),
               "stopped": sum(t["status"] == "stopped" for t in group),
               "failed": sum(t["status"] == "failed" for t in group)}
        if k is not None:
            for name in (f"best_prec_at_{k}", f"test_prec_at_{k}_at_best_val", f"map_at_{k}"):
                if name.startswith("test") and not any(name in t["scores"] for t in done):
                    continue
                row.update(_stat_columns(name, [t["scores"].get(name) for t in done]))
            if baselines is not None and done:
                row.update(_baseline_columns(done, k, baselines))
        out.append(row)
    return out


def _baseline_columns(done, k, baselines):
    """Mean and std of the baselines over the finished trials' seeds; chance (seed-free); a note."""
    found = [baselines(t["datasets_dir"], t["dataset"], t["seed"], k) for t in done]
    notes = sorted({f for f in found if isinstance(f, str)})
    found = [f for f in found if not isinstance(f, str)]
    row = {}
    for prefix in BASELINES:
        for i, metric in enumerate(("prec", "map")):
            mean, std, _, _ = stats([f[prefix][i] for f in found])
            row[f"{prefix}_{metric}_at_{k}_mean"], row[f"{prefix}_{metric}_at_{k}_std"] = mean, std
    chance = found[0]["chance"] if found else (None, None)
    row[f"chance_prec_at_{k}"], row[f"chance_map_at_{k}"] = chance
    row["baselines_note"] = "; ".join(notes) or None
    return row


# --------------------------------------------------------------------------- tables


def result_row(t):
    """A trial's row of results.csv."""
    k, s = t["k"], t["scores"]
    row = {"dataset": t["dataset"], "seed": t["seed"], **t["grid"], "trial": t["trial"], "status": t["status"],
           "rounds_done": t["rounds_done"], "seconds": t["seconds"], "attempts": t["attempts"],
           "best_round": s.get("best_round")}
    if k:
        row.update({f"best_prec_at_{k}": s.get(f"best_prec_at_{k}"), f"map_at_{k}": s.get(f"map_at_{k}")})
        row.update((c, s[c]) for c in ("best_val_round", f"val_prec_at_{k}", f"test_prec_at_{k}_at_best_val")
                   if c in s)
    row.update({"node": t["node"], "error": t["error"]})
    return row


def csv_text(rows):
    """CSV of dict rows; the columns are the union of the rows' keys, in first-seen order; None is empty."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else value_text(v)) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def _cell(row, prefix):
    """`mean ± std (min–max)` of a summary row's statistic; the value alone for one seed, '-' for none."""
    mean, std, low, high = (row.get(f"{prefix}_{s}") for s in ("mean", "std", "min", "max"))
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f} ({low:.4f}–{high:.4f})"


def _baseline_cell(row, prefix):
    mean, std = row.get(f"{prefix}_mean"), row.get(f"{prefix}_std")
    if mean is None:
        return "-"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _at(summary):
    """'@50' when every row has the same K, else '@K' (and the table gets a K column)."""
    ks = {row["top_k"] for row in summary if row["top_k"]}
    return f"@{ks.pop()}" if len(ks) == 1 else "@K"


def _has_val(summary):
    return any(c.startswith("test_prec_at") for row in summary for c in row)


def summary_table(groups, summary):
    """The summary as a Markdown table, padded to read as text too."""
    with_setting = any(text for _, text in groups)
    at = _at(summary)
    head = ["dataset"] + (["setting"] if with_setting else []) + ["finished", "stopped", "failed"]
    head += ["K"] if at == "@K" else []
    head += [f"best test Prec{at} (all rounds)"] + ([f"test Prec{at} at best val round"] if _has_val(summary) else [])
    head += [f"mAP{at} (selected round)", f"ridge Prec{at}", f"CCA Prec{at}", f"chance Prec{at}"]
    body = []
    for (_, text), row in zip(groups, summary):
        k = row["top_k"]
        cells = [row["dataset"]] + ([text or "-"] if with_setting else [])
        cells += [str(row[c]) for c in ("finished", "stopped", "failed")]
        cells += [str(k or "-")] if at == "@K" else []
        cells.append(_cell(row, f"best_prec_at_{k}"))
        cells += [_cell(row, f"test_prec_at_{k}_at_best_val")] if _has_val(summary) else []
        cells.append(_cell(row, f"map_at_{k}"))
        cells += [_baseline_cell(row, f"{p}_prec_at_{k}") for p in ("ridge", "cca")]
        chance = row.get(f"chance_prec_at_{k}")
        cells.append("-" if chance is None else f"{chance:.4f}")
        body.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(c) for c in body])


def summary_markdown(out_dir, table, trials, summary, plots):
    """summary.md: the table, what its cells mean, the trials that did not finish, the plots."""
    lines = [f"# Sweep report: {out_dir}", "", table, "",
             "Each score cell is the mean ± the sample standard deviation (ddof = 1) over the finished seeds, "
             "then (min–max). With one finished seed there is no standard deviation: the cell shows that seed's "
             "value alone (summary.csv leaves its std empty). Stopped, failed, pending and running trials are "
             "counted but not averaged.",
             "",
             "- **best test Prec@K (all rounds)**: the highest Prec@K on the unseen (test) classes over all rounds "
             "of a run, the reference's protocol (it selects the round on the test classes, so it is optimistic).",
             ]
    if _has_val(summary):
        lines.append("- **test Prec@K at best val round**: the test Prec@K of the round with the highest validation "
                     "Prec@K (earliest on ties), for runs with `select: val`.")
    lines += ["- **mAP@K (selected round)**: mAP@K at the best round, or at the best validation round with "
              "`select: val`.",
              "- **ridge, CCA**: `python -m zscrgan baselines` fitted on the seen classes with each finished "
              "trial's seed and evaluated at the same K (mean ± std over those seeds); **chance**: the expected "
              "Prec@K of a random ranking.", ""]
    notes = sorted({row["baselines_note"] for row in summary if row.get("baselines_note")})
    lines += [f"Note: {note}" for note in notes] + [""] * bool(notes)
    unfinished = [t for t in trials if t["status"] in ("failed", "stopped")]
    if unfinished:
        lines += ["## Trials that did not finish", ""]
        lines += [f"- `{t['dataset']}/{t['trial']}`: {t['status']} after {t['rounds_done']} rounds"
                  + (f": {t['error']}" if t["error"] else "") for t in unfinished]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{name}](plots/{name})" for name in plots]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots


def _file_name(text):
    return re.sub(r"[^A-Za-z0-9._=+,-]", "-", text)


def plot_curves(path, title, group, k, baseline_row=None):
    """Prec@K per round of a group's trials: the mean over the trials that reached each round, a min-max band."""
    plt = pictures.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for column, label, style in ((f"prec_at_{k}", "test", "-"), (f"val_prec_at_{k}", "validation", "--")):
        by_round = {}
        for t in group:
            for r in t["rows"]:
                if r.get(column) is not None:
                    by_round.setdefault(r["round"], []).append(r[column])
        if not by_round:
            continue
        rounds = sorted(by_round)
        values = [by_round[r] for r in rounds]
        n = len({t["trial"] for t in group if any(r.get(column) is not None for r in t["rows"])})
        line, = ax.plot(rounds, [np.mean(v) for v in values], style, marker="o" if len(rounds) == 1 else None,
                        label=f"ZSCRGAN {label} Prec@{k}, mean of {n} seed{'s' * (n != 1)}")
        ax.fill_between(rounds, [min(v) for v in values], [max(v) for v in values], color=line.get_color(),
                        alpha=0.2, linewidth=0, label=f"{label}: min-max over seeds")
    if baseline_row:
        for prefix, name, color in (("ridge", "ridge", "tab:green"), ("cca", "CCA", "tab:red")):
            mean = baseline_row.get(f"{prefix}_prec_at_{k}_mean")
            if mean is not None:
                ax.axhline(mean, color=color, linestyle=":", label=f"{name} baseline {mean:.3f}")
        chance = baseline_row.get(f"chance_prec_at_{k}")
        if chance is not None:
            ax.axhline(chance, color="gray", linestyle=":", label=f"chance {chance:.3f}")
    ax.set(title=title, xlabel="round", ylabel=f"Prec@{k} (unseen classes)")
    ax.grid(alpha=0.3)
    pictures.whole_rounds(ax)
    pictures.legend_beside(ax)
    pictures.save(fig, path)


def plot_summary(path, summary, labels):
    """Every dataset and setting: best Prec@K mean ± std over finished seeds, the baselines marked."""
    plt = pictures.pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(summary) + 2), 4.5))
    x = np.arange(len(summary))
    marks = (("best_prec_at_{k}", "ZSCRGAN, best round (mean ± std)", "o", "tab:blue", 0.0),
             ("test_prec_at_{k}_at_best_val", "ZSCRGAN at best val round", "D", "tab:purple", 0.12),
             ("ridge_prec_at_{k}", "ridge", "^", "tab:green", -0.2),
             ("cca_prec_at_{k}", "CCA", "s", "tab:red", 0.2))
    for template, label, marker, color, dx in marks:
        xs, ys, errs = [], [], []
        for i, row in enumerate(summary):
            mean = row.get(template.format(k=row["top_k"]) + "_mean")
            if mean is not None:
                xs.append(i + dx)
                ys.append(mean)
                errs.append(row.get(template.format(k=row["top_k"]) + "_std") or 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=errs, fmt=marker, color=color, capsize=4, label=label)
    chance = [(i, row.get(f"chance_prec_at_{row['top_k']}")) for i, row in enumerate(summary)]
    chance = [(i, c) for i, c in chance if c is not None]
    if chance:
        ax.hlines([c for _, c in chance], [i - 0.3 for i, _ in chance], [i + 0.3 for i, _ in chance], color="gray",
                  label="chance")
    at = _at(summary)
    ax.set_xticks(x, labels, rotation=20 if len(summary) > 4 else 0, ha="right" if len(summary) > 4 else "center",
                  fontsize=8)
    ax.set(title=f"best Prec{at} per dataset and setting, over the finished seeds", ylabel=f"Prec{at}",
           xlim=(-0.6, len(summary) - 0.4))
    ax.grid(axis="y", alpha=0.3)
    pictures.legend_beside(ax)
    pictures.save(fig, path)


# --------------------------------------------------------------------------- entry points


def write_report(out_dir, baselines=True, runs=None):
    """Write a sweep's results.csv, summary.csv, summary.md and plots/*.png; return the summary table.
    runs: run logs folders to summarise instead of the sweep in out_dir (which may then be new).

    Raises ReportError when out_dir holds no trials or a file cannot be read (nothing written then).
    """
    if runs:
        trials = read_runs(runs)
        os.makedirs(out_dir, exist_ok=True)
    elif not os.path.isdir(out_dir):
        raise ReportError(f"{out_dir}: no such folder")
    else:
        trials = find_trials(out_dir)
    if not trials:
        dump = best_named_dump(out_dir)
        raise ReportError(f"{out_dir} holds no sweep trials (logs/<dataset>_logs/<trial>/status.yml) and no "
                          "history.csv of a run" + (f": it is a results folder; read its dumps with `zscrgan inspect "
                                                    f"{dump}`" if dump else ""))
    groups = groups_of(trials)
    summary = summarise(groups, Baselines(os.path.join(out_dir, CACHE)) if baselines else None)
    table = summary_table(groups, summary)
    plots = os.path.join(out_dir, PLOTS)
    os.makedirs(plots, exist_ok=True)
    atomic_write(os.path.join(out_dir, "results.csv"), csv_text([result_row(t) for t in trials]).encode(), "report")
    atomic_write(os.path.join(out_dir, "summary.csv"), csv_text(summary).encode(), "report")
    labels = ["\n".join([d] + [text] * bool(text) + [f"{row['finished']} of {row['trials']} finished"])
              for (d, text), row in zip(groups, summary)]
    plot_summary(os.path.join(plots, "summary.png"), summary, labels)
    written = ["summary.png"]
    for ((dataset, text), group), row in zip(groups.items(), summary):
        if row["top_k"] and any(t["rows"] for t in group):
            written.append(_file_name(f"{dataset}_{text}" if text else dataset) + ".png")
            title = f"{dataset} {text}".strip() + f": Prec@{row['top_k']} per round"
            plot_curves(os.path.join(plots, written[-1]), title, group, row["top_k"], row)
    md = summary_markdown(out_dir, table, trials, summary, written)
    atomic_write(os.path.join(out_dir, "summary.md"), md.encode(), "report")
    return table


