"""A run's history.csv (one row per round) and the selection rule (docs/algorithm.md §11.2).

Columns: `round`, `prec_at_<k>` for K and each of eval_ks, `map_at_<K>`, with validation
classes `val_prec_at_<k>` and `val_map_at_<K>`, the round's mean losses and the seconds of
its steps. `History` is the one writer, `read_history` the one reader; `best_row` and
`is_better` are the one rule for which round is best.
"""
import csv
import dataclasses
import io
import math
import os
import re

from zscrgan.errors import ResultsError
from zscrgan.files import atomic_write

HISTORY_FILE = "history.csv"
TIMING_COLUMNS = ("e_step_s", "m_step_s", "eval_s")


def prec_column(k, val=False):
    """`prec_at_<k>`, or `val_prec_at_<k>` for the validation classes."""
    return ("val_" if val else "") + f"prec_at_{k}"


def map_column(k, val=False):
    """`map_at_<k>`, or `val_map_at_<k>` for the validation classes."""
    return ("val_" if val else "") + f"map_at_{k}"


def score_key(select, top_k):
    """The column that picks the best round: `prec_at_K`, or with select: val `val_prec_at_K`."""
    return prec_column(top_k, select == "val")


def metric_name(select, top_k):
    """How the console names the selection metric."""
    return ("val " if select == "val" else "") + f"Prec@{top_k}"


def prec_columns(columns):
    """The test `prec_at_<K>` columns of a history, in order."""
    return [c for c in columns if re.fullmatch(r"prec_at_\d+", c)]


def _number(text):
    if text in (None, ""):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_history(path, missing_ok=True):
    """(columns, rows) of a run's history.csv, in file order.

    rows: {"round": int, column: float or None (empty cell)}; non-finite values stay floats.
    Rows without a readable round (a line still being written) are skipped. An absent file
    gives ([], []) with missing_ok, else ResultsError; so does a file that is not a history
    (it needs a `round` and a `prec_at_<K>` column).
    """
    if not os.path.isfile(path):
        if missing_ok:
            return [], []
        what = "a folder, not a history.csv" if os.path.isdir(path) else "no such file"
        raise ResultsError(f"{path}: {what}")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ResultsError(f"{path} is not a history CSV ({e})")
    if "round" not in columns or not prec_columns(columns):
        raise ResultsError(f"{path} is not a history CSV: it needs a 'round' and a 'prec_at_<K>' column, "
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


class History:
    """Writes a run's history.csv, one row per round, the whole file again after each round.

    Rows of rounds after `last_round` (written by a killed run after its last checkpoint)
    are dropped. Formatted lines are kept, so a round formats one row, not all of them.
    """

    def __init__(self, path, last_round):
        self.path = path
        columns, old = read_history(path)
        self.rows = [row for row in old if row["round"] <= last_round]
        self.columns = columns if self.rows else []
        self.lines = [self._format(row) for row in self.rows]
        if len(self.rows) != len(old):
            self.write()

    def _format(self, row):
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n").writerow(row)
        return buf.getvalue()

    def append(self, row):
        self.rows.append(row)
        if not set(row) <= set(self.columns):  # new columns (eval_ks changed on resume)
            self.columns += [k for k in row if k not in self.columns]
            self.lines = [self._format(r) for r in self.rows[:-1]]
        self.lines.append(self._format(row))
        self.write()

    def write(self):
        if not self.rows:
            if os.path.exists(self.path):
                os.remove(self.path)
            return
        header = ",".join(self.columns) + "\n"
        atomic_write(self.path, (header + "".join(self.lines)).encode(), "history")


# --------------------------------------------------------------------------- the selection rule


def score(row, key):
    """A row's finite value of column `key`, or None (no such column, an empty cell, NaN)."""
    value = row.get(key)
    if isinstance(value, str):
        value = _number(value)
    return value if value is not None and math.isfinite(value) else None


def is_better(value, best):
    """Whether a round's score `value` is a new best over `best` (None: no best yet): finite
    and strictly higher, so the earliest round keeps a tie."""
    return value is not None and math.isfinite(value) and (best is None or value > best)


def best_row(rows, key):
    """The row with the highest `key`, the earliest on ties; rows without a finite value are
    skipped (docs/algorithm.md §11.2). rows: history rows; returns one of them, or None."""
    best = None
    for row in rows:
        if is_better(score(row, key), None if best is None else score(best, key)):
            best = row
    return best


def round_row(rows, round_):
    """The history row of round `round_`, or None."""
    return next((row for row in rows if row["round"] == round_), None)


@dataclasses.dataclass
class Selected:
    """The selected round so far of a run in progress (docs/algorithm.md §11.2): its number (0
    before any), selection score and test Prec@K. The best/ checkpoint's name carries the
    round, so resuming needs no state of its own."""
    round: int
    score: float
    test: float = None

    def patience_over(self, patience, round_):
        """Early stopping: `patience` rounds have passed since the selected round."""
        return bool(patience) and round_ > 0 and round_ - self.round >= patience
