#!/usr/bin/env python3
"""Tessera's independent feature oracle: a deliberately naive reference.

For every input row i (user u, event time t) and every feature in the spec it
aggregates ALL rows of the file, whatever their arrival order, that belong to
user u and whose event_timestamp ts satisfies

    start <= ts < t
    start = t - window_ms                                   (exact mode, tile_ms null)
    start = floor((t - window_ms) / tile_ms) * tile_ms      (tiled mode, UTC epoch tiles)

The event at exactly t (the row itself and any row tied with it) is excluded.
A row repeating the (partition, offset) of an earlier row of the same user is a
redelivery of that record: it counts once (the first row of the file), though
every row still gets its own output line.

It is written to be obviously right rather than fast: rows are grouped by user,
then for each row a boolean mask over all of that user's events selects the
window, and the aggregation is applied to the selected values. No sorting, no
sliding windows, no incremental state. Cost is O(sum over users of n_u^2).

    oracle.py --events events.csv --spec spec.json --out features.csv

See README.md in this folder for the interchange formats.
Dependencies: Python 3.11 standard library and numpy.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time

import numpy as np

EVENT_COLUMNS = ("user_id", "event_timestamp", "amount", "merchant_id", "partition", "offset")
# The header may stop before the position columns; then no two rows are the same record.
POSITION_COLUMNS = ("partition", "offset")
# How each column of the events CSV is parsed. Python's float() is correctly
# rounded, so "12.34" becomes the nearest double, whatever the number of digits.
COLUMN_TYPES = {
    "user_id": int,
    "event_timestamp": int,
    "amount": float,
    "merchant_id": str,
    "partition": int,
    "offset": int,
}
AGGREGATIONS = ("count", "sum", "avg", "min", "max", "count_distinct")
NUMERIC_AGGREGATIONS = ("sum", "avg", "min", "max")


class SpecError(ValueError):
    pass


# --------------------------------------------------------------------------- input


def read_events(path: str) -> dict[str, list]:
    """Read the events CSV into one Python list per column, in input row order (the position
    columns stay empty lists when the file has none)."""
    columns: dict[str, list] = {name: [] for name in EVENT_COLUMNS}
    without_positions = EVENT_COLUMNS[: -len(POSITION_COLUMNS)]
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        names = None if header is None else tuple(h.strip() for h in header)
        if names not in (EVENT_COLUMNS, without_positions):
            raise ValueError(f"{path}: header must be {','.join(EVENT_COLUMNS)} "
                             f"(or without {','.join(POSITION_COLUMNS)}), got {header!r}")
        for line_no, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(names):
                raise ValueError(f"{path}:{line_no}: expected {len(names)} fields, got {len(record)}")
            for name, text in zip(names, record):
                try:
                    columns[name].append(COLUMN_TYPES[name](text.strip() if name != "merchant_id" else text))
                except ValueError:
                    raise ValueError(f"{path}:{line_no}: bad {name} {text!r}") from None
    return columns


def load_spec(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    return validate_spec(spec, path)


def validate_spec(spec: dict, where: str = "spec") -> list[dict]:
    if not isinstance(spec, dict) or not isinstance(spec.get("features"), list) or not spec["features"]:
        raise SpecError(f"{where}: expected an object with a non-empty list 'features'")
    features = []
    seen = set()
    for k, feat in enumerate(spec["features"]):
        at = f"{where}: features[{k}]"
        if not isinstance(feat, dict):
            raise SpecError(f"{at}: expected an object")
        name = feat.get("name")
        if not isinstance(name, str) or not name or name == "row" or "," in name or name in seen:
            raise SpecError(f"{at}.name: a unique non-empty string without commas, not 'row'")
        seen.add(name)
        agg = feat.get("aggregation")
        if agg not in AGGREGATIONS:
            raise SpecError(f"{at}.aggregation: one of {', '.join(AGGREGATIONS)}, got {agg!r}")
        column = feat.get("column")
        if agg == "count":
            if column is not None and column not in COLUMN_TYPES:
                raise SpecError(f"{at}.column: null or one of {', '.join(EVENT_COLUMNS)}")
        elif column not in COLUMN_TYPES:
            raise SpecError(f"{at}.column: one of {', '.join(EVENT_COLUMNS)} for {agg}, got {column!r}")
        if agg in NUMERIC_AGGREGATIONS and COLUMN_TYPES[column] is str:
            raise SpecError(f"{at}.column: {agg} needs a numeric column, {column} is a string")
        window = feat.get("window_ms")
        if not _is_int(window) or window <= 0:
            raise SpecError(f"{at}.window_ms: a positive integer, got {window!r}")
        tile = feat.get("tile_ms")
        if tile is not None and (not _is_int(tile) or tile <= 0):
            raise SpecError(f"{at}.tile_ms: null or a positive integer, got {tile!r}")
        default = feat.get("default")
        if default is not None and (isinstance(default, bool) or not isinstance(default, (int, float))):
            raise SpecError(f"{at}.default: null or a number, got {default!r}")
        features.append({"name": name, "aggregation": agg, "column": column,
                         "window_ms": window, "tile_ms": tile, "default": default})
    return features


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# --------------------------------------------------------------------------- semantics


def window_start(t: int, window_ms: int, tile_ms: int | None) -> int:
    """First included timestamp of the window read as of t (Python ints, exact)."""
    if tile_ms is None:
        return t - window_ms
    # Python's // floors toward minus infinity, also for negative numbers.
    return ((t - window_ms) // tile_ms) * tile_ms


def aggregate(agg: str, values: list, default):
    """Aggregate the values selected by one window. Returns an int, a float or None."""
    if agg == "count":
        return len(values)
    if agg == "count_distinct":
        return len(set(values))
    if agg == "sum":
        return float(math.fsum(values)) if values else 0.0
    if not values:
        return None if default is None else float(default)
    if agg == "avg":
        return math.fsum(values) / len(values)
    if agg == "min":
        return float(min(values))
    if agg == "max":
        return float(max(values))
    raise AssertionError(agg)


def compute(columns: dict[str, list], features: list[dict], progress: bool = False) -> list[list]:
    """Return, for each input row in input order, the list of feature values."""
    n = len(columns["user_id"])
    started = time.monotonic()
    last_report = started

    # Group row indices by user (input order is kept but does not matter).
    rows_of_user: dict[int, list[int]] = {}
    for i, u in enumerate(columns["user_id"]):
        rows_of_user.setdefault(u, []).append(i)

    # Only the columns that features use. Strings stay Python objects; numbers
    # become numpy arrays so a mask can select them quickly.
    used = {f["column"] for f in features if f["column"] is not None}
    has_positions = all(len(columns[c]) == n for c in POSITION_COLUMNS)
    results: list[list | None] = [None] * n
    done = 0
    for user, idx in rows_of_user.items():
        ts = np.array([columns["event_timestamp"][i] for i in idx], dtype=np.int64)
        # A redelivered record (the same partition and offset again) counts once: its first row.
        first = np.ones(len(idx), dtype=bool)
        if has_positions:
            seen = set()
            for k, i in enumerate(idx):
                position = (columns["partition"][i], columns["offset"][i])
                first[k] = position not in seen
                seen.add(position)
        col = {}
        for c in used:
            vals = [columns[c][i] for i in idx]
            col[c] = np.array(vals, dtype=object if COLUMN_TYPES[c] is str else
                              (np.float64 if COLUMN_TYPES[c] is float else np.int64))
        for k, row in enumerate(idx):
            t = int(ts[k])
            out = []
            for f in features:
                start = window_start(t, f["window_ms"], f["tile_ms"])
                # THE window: every event of this user with start <= ts < t, each record once.
                mask = (ts >= start) & (ts < t) & first
                if f["column"] is None:
                    selected = [None] * int(mask.sum())
                else:
                    selected = col[f["column"]][mask].tolist()  # Python floats / ints / strs
                out.append(aggregate(f["aggregation"], selected, f["default"]))
            results[row] = out
        done += len(idx)
        if progress:
            now = time.monotonic()
            if now - last_report >= 2.0:
                last_report = now
                print(f"oracle: {done}/{n} rows ({done / n:.0%}), {now - started:.1f}s", file=sys.stderr, flush=True)
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- output


def format_value(agg: str, value) -> str:
    if value is None:
        return ""  # null: empty window with no declared default
    if agg in ("count", "count_distinct"):
        return str(int(value))
    return repr(float(value))  # shortest repr that round-trips


def write_features(path: str, features: list[dict], results: list[list]) -> None:
    aggs = [f["aggregation"] for f in features]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("row," + ",".join(feat["name"] for feat in features) + "\n")
        for i, values in enumerate(results):
            f.write(str(i) + "," + ",".join(format_value(a, v) for a, v in zip(aggs, values)) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Naive reference for Tessera's window features.")
    p.add_argument("--events", required=True, help="events CSV (interchange format)")
    p.add_argument("--spec", required=True, help="feature spec JSON")
    p.add_argument("--out", required=True, help="features CSV to write")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--timing", help="file to write the seconds of the computation alone (no start-up or I/O)")
    a = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        features = load_spec(a.spec)
        columns = read_events(a.events)
    except (SpecError, ValueError, OSError) as e:
        print(f"oracle: {e}", file=sys.stderr)
        return 2
    n = len(columns["user_id"])
    t_compute = time.perf_counter()
    results = compute(columns, features, progress=not a.quiet)
    if a.timing:
        with open(a.timing, "w") as f:
            f.write(f"{time.perf_counter() - t_compute}\n")
    write_features(a.out, features, results)
    if not a.quiet:
        print(f"oracle: {n} rows x {len(features)} features in {time.monotonic() - t0:.1f}s -> {a.out}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
