"""Read ZSCRGAN's outputs: a retrieval dump, or a run's per-round history.

    python -m zscrgan.inspect retrieved_res/CUB_res/acc0.521.pkl [--json] [--dataset NAME] [--top N]
    python -m zscrgan.inspect --history ckt_logs/CUB_logs/history.csv [--json] [--rows N]
    python -m zscrgan.inspect --dataset CUB [--run_name NAME] [--history]   a run's best dump (or history)

A dump (docs/algorithm.md §7) is a pickled list with one dict per query, in query order:
{query class id: [class ids of the K retrieved images, best first]}. Its file name
`acc<score>.pkl` carries the Prec@K the trainer measured; the inspector recomputes it from
the records with the evaluation's own metric and says whether the two agree.

Bad input (a missing file, not a dump, an unknown dataset) is one line on stderr and exit
status 2.
"""
import argparse
import csv
import json
import math
import os
import re
import sys

import numpy as np
import yaml

from zscrgan.data import FILES, DatasetError, Refused, list_datasets, load_dataset, restricted_load
from zscrgan.runfiles import run_dirs


def evaluation():
    """zscrgan.evaluation, imported on first use: it loads TensorFlow, which takes seconds and
    logs to stderr, while histories and bad input need none of it."""
    from zscrgan import evaluation as module
    return module


class InspectError(ValueError):
    """A file or dataset the inspector cannot read; the message says which and why."""


# Dumps hold only lists, dicts and numbers. The reference (Python 2) pickled numpy int64
# class ids, which arrive as numpy scalars; nothing else is admitted.
_DUMP_GLOBALS = frozenset({
    ("__builtin__", "long"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
})


def _as_class_id(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(repr(value))
    return int(value)


def load_dump(path):
    """Load and check a dump: a list of {query class id: [K retrieved class ids]}, one K.

    Returns the records with plain int ids. Raises InspectError.
    """
    if not os.path.isfile(path):
        raise InspectError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            obj = restricted_load(f, _DUMP_GLOBALS)
    except Refused as e:
        raise InspectError(f"{path} is not a retrieval dump: {e} (dumps hold only lists, dicts and numbers)")
    except Exception as e:  # truncated or corrupt files raise many kinds of errors
        raise InspectError(f"{path} is not a readable pickle ({type(e).__name__}: {e})")
    if not isinstance(obj, list) or not obj:
        raise InspectError(f"{path} is not a retrieval dump: expected a non-empty list of "
                           f"{{query class: [retrieved classes]}}, got {type(obj).__name__}")
    records, k = [], None
    for i, rec in enumerate(obj):
        try:
            if not isinstance(rec, dict) or len(rec) != 1:
                raise TypeError("not a one-key dict")
            (query, retrieved), = rec.items()
            if not isinstance(retrieved, (list, tuple)):
                raise TypeError("retrieved classes are not a list")
            query, retrieved = _as_class_id(query), [_as_class_id(r) for r in retrieved]
        except TypeError as e:
            raise InspectError(f"{path} is not a retrieval dump: record {i} is not "
                               f"{{query class id: [retrieved class ids]}} ({e})")
        if not retrieved or (k is not None and len(retrieved) != k):
            raise InspectError(f"{path}: record {i} retrieves {len(retrieved)} images, expected {k or 'at least 1'}")
        k = len(retrieved)
        records.append({query: retrieved})
    return records


def dump_arrays(records):
    """(query labels (Q,), retrieved labels (Q, K)) of a dump's records."""
    query = np.array([next(iter(r)) for r in records], np.int64)
    retrieved = np.array([next(iter(r.values())) for r in records], np.int64)
    return query, retrieved


def name_score(path):
    """The score string in `acc<score>.pkl`, or None when the name carries none."""
    m = re.fullmatch(r"acc(.+)\.pkl", os.path.basename(path))
    if not m:
        return None
    try:
        float(m.group(1))
    except ValueError:
        return None
    return m.group(1)


def best_dump(folder, logs=None):
    """Path of the run's best dump in `folder`, or None: the highest-scoring `acc<score>.pkl`
    (the earliest name on ties), or, when the run's logs folder `logs` says it selected on
    validation classes, the dump of its selected round (named by that round's test score)."""
    if not os.path.isdir(folder):
        return None
    selected = _selected_name(logs) if logs else None
    if selected and os.path.isfile(os.path.join(folder, selected)):
        return os.path.join(folder, selected)
    named = sorted((-float(name_score(f)), f) for f in os.listdir(folder) if name_score(f) is not None)
    return os.path.join(folder, named[0][1]) if named else None


def _selected_name(logs):
    """`acc<test score>.pkl` of the selected round of a run with `select: val`, else None."""
    from zscrgan.runfiles import read_history, read_yaml
    from zscrgan.selection import best_row, score_key
    try:
        cfg = read_yaml(os.path.join(logs, "config.yml"))
    except Exception:  # an unreadable config leaves the usual rule
        return None
    if not isinstance(cfg, dict) or cfg.get("select") != "val":
        return None
    k = cfg.get("top_k", 50)
    row = best_row(read_history(os.path.join(logs, "history.csv")), score_key("val", k))
    return None if row is None else f"acc{float(row[f'prec_at_{k}'])}.pkl"


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


def _dataset_folder(datasets_dir, name):
    folder = os.path.join(datasets_dir, name)
    if not os.path.isdir(folder):
        known = ", ".join(list_datasets(datasets_dir)) or "none"
        raise InspectError(f"unknown dataset {name}: no folder {folder} (datasets there: {known})")
    return folder


def per_class(query, retrieved, n_relevant=None):
    """Rows {class, queries, prec_at_k[, ap_at_k]} per query class, worst Prec@K first."""
    ev, rows = evaluation(), []
    for c in np.unique(query):
        mine = query == c
        row = {"class": int(c), "queries": int(mine.sum()), "prec_at_k": ev.prec_at_k(query[mine], retrieved[mine])}
        if n_relevant is not None:
            row["ap_at_k"] = ev.map_at_k(query[mine], retrieved[mine], n_relevant[mine])
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


def inspect_dump(path, dataset=None, datasets_dir="datasets", top=10):
    """Everything the dump report shows, as a JSON-ready dict."""
    records = load_dump(path)
    query, retrieved = dump_arrays(records)
    k = retrieved.shape[1]
    score = evaluation().prec_from_records(records)
    equal, note = score_check(score, name_score(path))
    report = {"file": path, "k": k, "queries": len(records), "classes": int(len(np.unique(query))),
              "prec_at_k": score, "name_score": name_score(path), "score_matches_name": equal,
              "score_note": note, "map_at_k": None, "notes": []}
    names, n_relevant = {}, None
    if dataset:
        folder = _dataset_folder(datasets_dir, dataset)
        if os.path.isfile(os.path.join(folder, "classes.txt")):
            names = read_class_names(folder)
        else:
            report["notes"].append(f"{folder} has no classes.txt: classes are shown by id")
        if all(os.path.isfile(os.path.join(folder, f)) for f in FILES):
            n_relevant = _gallery_counts(folder, query, report["notes"])
    if n_relevant is not None:
        report["map_at_k"] = evaluation().map_at_k(query, retrieved, n_relevant)
    report["per_class"] = per_class(query, retrieved, n_relevant)
    report["confusions"] = confusions(query, retrieved, top)
    for row in report["per_class"]:
        row["name"] = names.get(row["class"])
    for row in report["confusions"]:
        row["query_name"] = names.get(row["query_class"])
        row["retrieved_name"] = names.get(row["retrieved_class"])
    return report


def _gallery_counts(folder, query, notes):
    """n_relevant (Q,) from the dataset's unseen gallery, or None (with a note) if the dump is not of it."""
    try:
        ds = load_dataset(folder)
    except DatasetError as e:
        raise InspectError(str(e))
    _, q_labels, _, g_labels = evaluation().eval_split(ds)
    if not np.array_equal(q_labels, query):
        notes.append(f"the dump's queries are not {ds.name}'s unseen texts in evaluation order: no mAP")
        return None
    ids, counts = np.unique(g_labels, return_counts=True)
    return counts[np.searchsorted(ids, query)]


def _name(cid, name):
    return f"{cid} ({name})" if name else str(cid)


def format_dump(r):
    """The human-readable dump report."""
    k = r["k"]
    prec = f"Prec@{k}   {r['prec_at_k']!r}"
    lines = [f"dump      {r['file']}",
             f"queries   {r['queries']} in {r['classes']} classes, top {k} retrieved for each",
             prec if r["score_matches_name"] is False else f"{prec} ({r['score_note']})"]
    if r["map_at_k"] is not None:
        lines.append(f"mAP@{k}    {r['map_at_k']!r}")
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


def read_history(path):
    """(columns, rows) of a history.csv; rows are {column: float or None}, `round` an int.

    Needs a `round` column and at least one `prec_at_<K>` column; any others are kept.
    Rows without a readable round (e.g. a line still being written) are skipped.
    """
    if not os.path.isfile(path):
        raise InspectError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            raw = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise InspectError(f"{path} is not a history CSV ({e})")
    if "round" not in columns or not _prec_columns(columns):
        raise InspectError(f"{path} is not a history CSV: it needs a 'round' and a 'prec_at_<K>' column, "
                           f"has {columns[:12]}")
    rows = []
    for rec in raw:
        try:
            row = {"round": int(rec["round"])}
        except (TypeError, ValueError):
            continue
        row.update((c, _number(rec.get(c))) for c in columns if c != "round")
        rows.append(row)
    return columns, rows


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _prec_columns(columns):
    return [c for c in columns if re.fullmatch(r"prec_at_\d+", c)]


def _best_index(rows, column):
    """Index of the row that selection.best_row picks (the highest, earliest on ties), or None."""
    from zscrgan.selection import best_row
    row = best_row(rows, column)
    return None if row is None else rows.index(row)


def _run_select(history_path):
    """The `select` of the run whose history this is, from the config.yml beside it; 'val' when
    there is none (a history with validation columns is read for its validation-selected round)."""
    try:
        with open(os.path.join(os.path.dirname(history_path), "config.yml")) as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return "val"
    return cfg.get("select", "test") if isinstance(cfg, dict) else "val"


def inspect_history(path, max_rows=20):
    """The history report as a JSON-ready dict: every row, the shown rows, the best round.

    With validation columns (val_prec_at_<K>, docs/algorithm.md §11.2) it also holds the best
    validation round ("val_best") and the selected round ("selected": the best validation
    round when the run's config.yml says select: val, else the best test round).
    """
    columns, rows = read_history(path)
    metric = _prec_columns(columns)[0]
    best = _best_index(rows, metric)
    report = {"file": path, "columns": columns, "metric": metric, "rounds": len(rows),
              "best_index": best, "best": None if best is None else rows[best], "rows": rows,
              "select": "test", "selected_index": best}
    keep = [best]
    if f"val_{metric}" in columns:
        val_best = _best_index(rows, f"val_{metric}")
        report["select"] = _run_select(path)
        report["val_best"] = None if val_best is None else rows[val_best]
        if report["select"] == "val":
            report["selected_index"] = val_best
        keep.append(val_best)
    selected = report["selected_index"]
    report["selected"] = None if selected is None else rows[selected]
    report["shown"] = _shown(len(rows), keep, max_rows)
    return report


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
    other_i = (h["best_index"] if h["select"] == "val" else _best_index(h["rows"], f"val_{h['metric']}")) \
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
        lines.append(f"best round: {best['round']} ({h['metric']} = {best[h['metric']]!r}{extra})")
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
        lines.append(f"test Prec@{k} at the best validation round: {val_best[metric]!r} (round {val_best['round']}, "
                     f"val_{metric} = {val_best['val_' + metric]!r})")
    else:
        lines.append(f"test Prec@{k} at the best validation round: none (val_{metric} is empty in every row)")
    lines.append(f"best test Prec@{k} over all rounds (the reference's protocol): {best[metric]!r} "
                 f"(round {best['round']})")
    return lines


# ----------------------------------------------------------------------------- command line


def _parser():
    p = argparse.ArgumentParser(prog="python -m zscrgan.inspect", description=__doc__.splitlines()[0])
    p.add_argument("dump", nargs="?", help="a retrieval dump, e.g. retrieved_res/CUB_res/acc0.521.pkl "
                   "(without one, --dataset NAME [--run_name NAME] means that run's best dump)")
    p.add_argument("--history", metavar="CSV", nargs="?", const="",
                   help="a run's ckt_logs/<NAME>_logs/history.csv instead of a dump "
                        "(without CSV: the history of the run given by --dataset [--run_name])")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--dataset", metavar="NAME", help="name classes from <datasets_dir>/NAME/classes.txt "
                   "and add mAP@K from its gallery; without a file, also selects the run")
    p.add_argument("--run_name", metavar="NAME", help="the run's name (its --run_name), with --dataset")
    p.add_argument("--logs_dir", help="where the run's <NAME>_logs folder is (default: ckt_logs)")
    p.add_argument("--results_dir", help="where the run's <NAME>_res folder is (default: retrieved_res)")
    p.add_argument("--datasets_dir", default="datasets", help="where dataset folders live (default: datasets)")
    p.add_argument("--top", type=int, default=10, help="confusions to list (default: 10)")
    p.add_argument("--rows", type=int, default=20, help="history rows to print, 0 for all (default: 20)")
    return p


def _inputs(parser, args):
    """(dump path or None, history path or None): the files given, or those of the run --dataset names."""
    if args.dump is not None and args.history is not None:
        parser.error("give either a dump file or --history, not both")
    if args.dump is not None or args.history:
        run_flags = [f"--{k}" for k in ("run_name", "logs_dir", "results_dir") if getattr(args, k) is not None]
        if run_flags:
            parser.error(f"{', '.join(run_flags)} select a run's files: give --dataset NAME instead of a file")
        return args.dump, args.history
    if not args.dataset:
        parser.error("give a dump file, --history CSV, or --dataset NAME [--run_name NAME] for a run's files")
    logs, results = run_dirs(args.dataset, args.run_name, args.logs_dir or "ckt_logs",
                             args.results_dir or "retrieved_res")
    if args.history is not None:
        return None, os.path.join(logs, "history.csv")
    path = best_dump(results, logs)
    if path is None:
        raise InspectError(f"no dump acc<score>.pkl in {results}: check --dataset, --run_name and --results_dir")
    return path, None


def _jsonable(obj):
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        dump, history = _inputs(parser, args)
        if history:
            report = inspect_history(history, args.rows)
            text = format_history(report)
        else:
            report = inspect_dump(dump, args.dataset, args.datasets_dir, args.top)
            text = format_dump(report)
    except (InspectError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        if history:
            report = {k: v for k, v in report.items() if k not in ("shown", "best_index", "selected_index")}
        elif report["score_matches_name"] is False:
            print(report["score_note"], file=sys.stderr)
        print(json.dumps(_jsonable(report), indent=2))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
