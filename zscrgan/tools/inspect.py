"""`zscrgan inspect`: read ZSCRGAN's outputs, a retrieval dump or a run's per-round history.

    python -m zscrgan inspect retrieved_res/CUB_res/acc0.521.pkl [--json] [--dataset NAME] [--top N]
    python -m zscrgan inspect --history ckt_logs/CUB_logs/history.csv [--json] [--rows N]
    python -m zscrgan inspect --dataset CUB [--run_name NAME] [--history]   a run's selected dump (or history)

A dump (docs/algorithm.md §7) is a pickled list with one dict per query, in query order:
{query class id: [class ids of the K retrieved images, best first]}. Its file name
`acc<score>.pkl` carries the Prec@K the trainer measured; the inspector recomputes it from
the records with the evaluation's own metric and says whether the two agree.

Bad input (a missing file, not a dump, an unknown dataset) is one line on stderr and exit
status 2.
"""
import json
import math
import os
import re
import sys

import numpy as np

from zscrgan.data.dataset import FILES, dataset_folder, eval_split, load_dataset
from zscrgan.errors import BadInput, UsageError
from zscrgan.model.metrics import map_at_k, n_relevant, prec_at_k, prec_from_records, record_arrays
from zscrgan.results.dumps import load_dump, name_score
from zscrgan.results.history import HISTORY_FILE, best_row, prec_column, prec_columns, read_history
from zscrgan.results.run import Run
from zscrgan.toolkit.arguments import datasets_dir, run_arguments, positive


class InspectError(BadInput, ValueError):
    """A file the inspector cannot read; the message says which and why."""


def score_check(recomputed, named):
    """Compare the recomputed Prec@K with the file name's. Returns (equal or None, note)."""
    if named is None:
        return None, "the file name is not acc<score>.pkl: nothing to compare"
    if recomputed == float(named):
        return True, f"equals the {named} in the file name"
    note = f"WARNING: recomputed {recomputed!r} differs from the {named} in the file name"
    if f"{recomputed:.12g}" == f"{float(named):.12g}":
        # Python 2's str() keeps 12 significant digits: the reference's file names are rounded.
        note += " beyond 12 significant digits (a Python 2 name)"
    return False, note


def read_class_names(folder):
    """{class id: name} from `<folder>/classes.txt` (lines `id, name`, `id<TAB>name` or `id name`)."""
    path = os.path.join(folder, "classes.txt")
    names = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"(-?\d+)\s*[,\t ]\s*(.*)", line)
            if not m:
                raise InspectError(f"{path} line {n}: expected 'class id, name', got {line!r}")
            names[int(m.group(1))] = m.group(2).strip()
    return names


def per_class(query, retrieved, relevant=None):
    """Rows {class, queries, prec_at_k[, ap_at_k]} per query class, worst Prec@K first."""
    rows = []
    for c in np.unique(query):
        mine = query == c
        row = {"class": int(c), "queries": int(mine.sum()), "prec_at_k": prec_at_k(query[mine], retrieved[mine])}
        if relevant is not None:
            row["ap_at_k"] = map_at_k(query[mine], retrieved[mine], relevant[mine])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["prec_at_k"], r["class"]))


def confusions(query, retrieved, top):
    """The `top` largest (query class -> other retrieved class) shares of a class's top-K lists."""
    out = []
    for c in np.unique(query):
        got = retrieved[query == c]
        ids, counts = np.unique(got, return_counts=True)
        for r, n in zip(ids, counts):
            if r != c:
                out.append({"query_class": int(c), "retrieved_class": int(r),
                            "count": int(n), "share": float(n / got.size)})
    out.sort(key=lambda e: (-e["share"], e["query_class"], e["retrieved_class"]))
    return out[:top]


def inspect_dump(path, dataset=None, datasets=None, top=10):
    """Everything the dump report shows, as a JSON-ready dict; datasets: the folder of dataset
    folders (needed with `dataset`)."""
    records = load_dump(path)
    query, retrieved = record_arrays(records)
    k = retrieved.shape[1]
    score = prec_from_records(records)
    equal, note = score_check(score, name_score(path))
    report = {"file": path, "k": k, "queries": len(records), "classes": int(len(np.unique(query))),
              "prec_at_k": score, "name_score": name_score(path), "score_matches_name": equal,
              "score_note": note, "map_at_k": None, "notes": []}
    names, relevant = {}, None
    if dataset:
        folder = dataset_folder(datasets, dataset)
        if os.path.isfile(os.path.join(folder, "classes.txt")):
            names = read_class_names(folder)
        else:
            report["notes"].append(f"{folder} has no classes.txt: classes are shown by id")
        if all(os.path.isfile(os.path.join(folder, f)) for f in FILES):
            relevant = _gallery_counts(folder, query, report["notes"])
    if relevant is not None:
        report["map_at_k"] = map_at_k(query, retrieved, relevant)
    report["per_class"] = per_class(query, retrieved, relevant)
    report["confusions"] = confusions(query, retrieved, top)
    for row in report["per_class"]:
        row["name"] = names.get(row["class"])
    for row in report["confusions"]:
        row["query_name"] = names.get(row["query_class"])
        row["retrieved_name"] = names.get(row["retrieved_class"])
    return report


def _gallery_counts(folder, query, notes):
    """n_relevant (Q,) from the dataset's unseen gallery, or None (with a note) if the dump is not of it."""
    ds = load_dataset(folder)
    _, q_labels, _, g_labels = eval_split(ds)
    if not np.array_equal(q_labels, query):
        notes.append(f"the dump's queries are not {ds.name}'s unseen texts in evaluation order: no mAP")
        return None
    return n_relevant(query, g_labels)


def _name(cid, name):
    return f"{cid} ({name})" if name else str(cid)


def format_dump(r):
    """The human-readable dump report."""
    k = r["k"]
    prec = f"Prec@{k}   {r['prec_at_k']:.4f}"
    lines = [f"dump      {r['file']}",
             f"queries   {r['queries']} in {r['classes']} classes, top {k} retrieved for each",
             prec if r["score_matches_name"] is False else f"{prec} ({r['score_note']})"]
    if r["map_at_k"] is not None:
        lines.append(f"mAP@{k}    {r['map_at_k']:.4f}")
    if r["score_matches_name"] is False:
        lines.append(r["score_note"])
    lines += [f"note: {n}" for n in r["notes"]]
    has_ap = r["map_at_k"] is not None
    width = max([5] + [len(_name(x["class"], x["name"])) for x in r["per_class"]])
    lines += ["", "per class, worst first",
              f"  {'class':<{width}}  queries  {'Prec@' + str(k):>8}" + (f"  {'AP@' + str(k):>8}" if has_ap else "")]
    for x in r["per_class"]:
        line = f"  {_name(x['class'], x['name']):<{width}}  {x['queries']:>7}  {x['prec_at_k']:>8.4f}"
        lines.append(line + (f"  {x['ap_at_k']:>8.4f}" if has_ap else ""))
    lines += ["", f"most frequent confusions (share of the query class's top-{k} lists)"]
    if not r["confusions"]:
        lines.append("  none: every retrieved image is of the query's class")
    for x in r["confusions"]:
        pair = f"{_name(x['query_class'], x['query_name'])} -> {_name(x['retrieved_class'], x['retrieved_name'])}"
        lines.append(f"  {pair:<{2 * width + 4}}  {x['share']:.4f}  ({x['count']} of {k * _queries(r, x)} retrieved)")
    return "\n".join(lines)


def _queries(report, confusion):
    return next(x["queries"] for x in report["per_class"] if x["class"] == confusion["query_class"])


# ----------------------------------------------------------------------------- history


def inspect_history(path, max_rows=20):
    """The history report as a JSON-ready dict: every row, the shown rows, the best round.

    With validation columns (val_prec_at_<K>, docs/algorithm.md §11.2) it also holds the best
    validation round ("val_best") and the selected round ("selected": the best validation
    round when the run's config.yml says select: val, else the best test round).
    """
    columns, rows = read_history(path, missing_ok=False)
    run = Run.at(os.path.dirname(path))
    metric = prec_column(run.top_k)
    if metric in columns:
        best, selected = run.best_test(rows), run.selected(rows)
    else:  # a history without the run's K: its first Prec@K column stands in, for both rounds
        metric = prec_columns(columns)[0]
        best = selected = best_row(rows, metric)
    best, selected = _index(rows, best), _index(rows, selected)
    report = {"file": path, "columns": columns, "metric": metric, "rounds": len(rows),
              "best_index": best, "best": None if best is None else rows[best], "rows": rows,
              "select": run.select, "selected_index": selected,
              "selected": None if selected is None else rows[selected]}
    keep = [best, selected]
    if f"val_{metric}" in columns:
        val_best = _index(rows, best_row(rows, f"val_{metric}"))
        report["val_best"] = None if val_best is None else rows[val_best]
        keep.append(val_best)
    report["shown"] = _shown(len(rows), keep, max_rows)
    return report


def _index(rows, row):
    return None if row is None else rows.index(row)


def _shown(n_rows, keep, max_rows):
    """Indices of the rows to print: all, or `max_rows` evenly spaced ones (first and last) plus
    the rows in `keep` (indices or None)."""
    if max_rows <= 0 or n_rows <= max_rows:
        return list(range(n_rows))
    if max_rows == 1:
        picks = {n_rows - 1}
    else:
        picks = {round(i * (n_rows - 1) / (max_rows - 1)) for i in range(max_rows)}
    picks.update(i for i in keep if i is not None)
    return sorted(picks)


def _cell(column, value):
    if value is None:
        return "-"
    if column == "round":
        return str(value)
    if column.startswith(("prec_at_", "map_at_")):
        return f"{value:.4f}"
    if column.endswith("_s"):
        return f"{value:.2f}"
    return f"{value:.4g}"


def format_history(h):
    """The human-readable history report."""
    lines = [f"history   {h['file']}", f"rounds    {h['rounds']}"]
    if not h["rows"]:
        return "\n".join(lines + ["no rounds recorded yet"])
    cols = ["round"] + [c for c in h["columns"] if c != "round"]
    table = [[_cell(c, h["rows"][i].get(c)) for c in cols] for i in h["shown"]]
    widths = [max(len(c), *(len(t[j]) for t in table)) for j, c in enumerate(cols)]
    validated = "val_best" in h
    selected_i = h["selected_index"]
    # With validation, "+" marks whichever of the best test and best validation rounds was not selected.
    other_i = (h["best_index"] if h["select"] == "val" else _index(h["rows"], h["val_best"])) \
        if validated else None
    lines.append("")
    lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for i, cells in zip(h["shown"], table):
        mark = "* " if i == selected_i else "+ " if i == other_i else "  "
        lines.append(mark + "  ".join(t.rjust(w) for t, w in zip(cells, widths)))
    if len(h["shown"]) < h["rounds"]:
        lines.append(f"  ({len(h['shown'])} of {h['rounds']} rounds shown; --rows 0 shows all)")
    lines.append("")
    if h["best"] is None:
        lines.append(f"best round: none ({h['metric']} is empty in every row)")
    elif not validated:
        best = h["best"]
        extra = "".join(f", {c} = {_cell(c, best[c])}" for c in h["columns"]
                        if c.startswith("map_at_") and best.get(c) is not None)
        lines.append(f"best round: {best['round']} ({h['metric']} = {_cell(h['metric'], best[h['metric']])}{extra})")
    else:
        lines += _validation_lines(h)
    return "\n".join(lines)


def _validation_lines(h):
    """The two figures of a run with validation classes, and which round the run selected."""
    metric, best, val_best = h["metric"], h["best"], h["val_best"]
    k = metric[len("prec_at_"):]
    kind, other = ("validation", best) if h["select"] == "val" else ("test", val_best)
    lines = [f"* selected round: {h['selected']['round']} (select: {h['select']}, the best {kind} Prec@{k})"
             + (f"; + round {other['round']}, the best {'test' if kind == 'validation' else 'validation'} "
                f"round" if other is not None and other is not h["selected"] else "")]
    if val_best is not None:
        lines.append(f"test Prec@{k} at the best validation round: {_cell(metric, val_best[metric])} (round {val_best['round']}, "
                     f"val_{metric} = {_cell(metric, val_best['val_' + metric])})")
    else:
        lines.append(f"test Prec@{k} at the best validation round: none (val_{metric} is empty in every row)")
    lines.append(f"best test Prec@{k} over all rounds (the reference's protocol): {_cell(metric, best[metric])} "
                 f"(round {best['round']})")
    return lines


# ----------------------------------------------------------------------------- command line


def add_arguments(p):
    p.description = __doc__.splitlines()[0].split(": ", 1)[1]
    p.add_argument("dump", nargs="?", help="a retrieval dump, e.g. retrieved_res/CUB_res/acc0.521.pkl "
                   "(without one, --dataset NAME [--run_name NAME] means that run's selected dump)")
    p.add_argument("--history", metavar="CSV", nargs="?", const="",
                   help="a run's history.csv or its logs folder (ckt_logs/<NAME>_logs) instead of a dump "
                        "(without CSV: the history of the run given by --dataset [--run_name])")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    run_arguments(p, dataset_required=False)
    p.add_argument("--top", type=positive(int), default=10, help="confusions to list (default: 10)")
    p.add_argument("--rows", type=int, default=20, help="history rows to print, 0 for all (default: 20)")


def _inputs(args):
    """(dump path or None, history path or None, the run's config or None): the files given, or
    those of the run --dataset names. A logs folder given to --history means its history.csv."""
    if args.dump is not None and args.history is not None:
        raise UsageError("give either a dump file or --history, not both")
    if args.dump is not None or args.history:
        run_flags = [f"--{k}" for k in ("run_name", "logs_dir", "results_dir") if getattr(args, k) is not None]
        if run_flags:
            raise UsageError(f"{', '.join(run_flags)} select a run's files: give --dataset NAME instead of a file")
        history = args.history
        if history and os.path.isdir(history):
            if not os.path.isfile(os.path.join(history, HISTORY_FILE)):
                raise InspectError(f"--history {history} is a folder without a {HISTORY_FILE}: give a run's "
                                   f"logs folder or its {HISTORY_FILE}")
            history = os.path.join(history, HISTORY_FILE)
        return args.dump, history, None
    if not args.dataset:
        raise UsageError("give a dump file, --history CSV, or --dataset NAME [--run_name NAME] for a run's files")
    run = Run.find(args.dataset, args.run_name, args.logs_dir, args.results_dir)
    if args.history is not None:
        return None, run.history_path, run.cfg
    path = run.selected_dump()
    if path is None:
        raise InspectError(f"no dump acc<score>.pkl in {run.results}: check --dataset, --run_name and --results_dir")
    return path, None, run.cfg


def _jsonable(obj):
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def main(args):
    dump, history, cfg = _inputs(args)
    if history:
        report = inspect_history(history, args.rows)
        text = format_history(report)
    else:
        report = inspect_dump(dump, args.dataset, datasets_dir(args, cfg), args.top)
        text = format_dump(report)
    if args.json:
        if history:
            report = {k: v for k, v in report.items() if k not in ("shown", "best_index", "selected_index")}
        elif report["score_matches_name"] is False:
            print(report["score_note"], file=sys.stderr)
        print(json.dumps(_jsonable(report), indent=2))
    else:
        print(text)
    return 0
