#!/usr/bin/env python3
"""Baseline 1: the seed's naive loop, as a data scientist really writes it in pandas.

For every transaction, filter the WHOLE dataframe for the same user's
transactions with t - W <= ts < t, then take len / mean / max / nunique:

    w = df[(df.user_id == u) & (df.event_timestamp >= t - W) & (df.event_timestamp < t)]

One filter per window (1h, 24h, 7d, 30d); the 7d filter serves avg, max and
distinct. Each filter scans all N rows, so the run is O(N^2): the point of this
baseline is to show how that grows (the caller runs it at 2k/5k/10k/20k).

    seed_naive.py --events events.csv --limit N [--out features.csv]

Only the first N rows of the file are read, and the windows see only those N
rows. Prints ONE JSON line on stdout:
    {"baseline": "seed_naive", "events": N, "seconds": S, "events_per_s": R, "features": 6}
"seconds" times the loop only (not the CSV read or write). Empty windows give
0 for counts and 0.0 for avg/max, as the seed does. Averages use pandas' mean
(not math.fsum), so they may differ from the oracle in the last bits.

Dependencies: Python 3.11, pandas, numpy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pandas as pd

HOUR = 3_600_000
DAY = 24 * HOUR

FEATURE_NAMES = [
    "transaction_count_1h",
    "transaction_count_24h",
    "avg_transaction_amount_7d",
    "avg_transaction_amount_30d",
    "max_transaction_amount_7d",
    "distinct_merchant_count_7d",
]
COUNT_FEATURES = {"transaction_count_1h", "transaction_count_24h", "distinct_merchant_count_7d"}


def naive_features(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, txn in df.iterrows():
        u = txn["user_id"]
        t = txn["event_timestamp"]

        last_1h = df[(df.user_id == u) & (df.event_timestamp >= t - HOUR) & (df.event_timestamp < t)]
        last_24h = df[(df.user_id == u) & (df.event_timestamp >= t - DAY) & (df.event_timestamp < t)]
        last_7d = df[(df.user_id == u) & (df.event_timestamp >= t - 7 * DAY) & (df.event_timestamp < t)]
        last_30d = df[(df.user_id == u) & (df.event_timestamp >= t - 30 * DAY) & (df.event_timestamp < t)]

        rows.append({
            "transaction_count_1h": len(last_1h),
            "transaction_count_24h": len(last_24h),
            "avg_transaction_amount_7d": last_7d.amount.mean() if len(last_7d) else 0.0,
            "avg_transaction_amount_30d": last_30d.amount.mean() if len(last_30d) else 0.0,
            "max_transaction_amount_7d": last_7d.amount.max() if len(last_7d) else 0.0,
            "distinct_merchant_count_7d": last_7d.merchant_id.nunique(),
        })
    return pd.DataFrame(rows, columns=FEATURE_NAMES)


def write_features(path: str, result: pd.DataFrame) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("row," + ",".join(FEATURE_NAMES) + "\n")
        cols = [result[c].tolist() for c in FEATURE_NAMES]
        fmt = [(lambda v: str(int(v))) if c in COUNT_FEATURES else (lambda v: repr(float(v))) for c in FEATURE_NAMES]
        for i, values in enumerate(zip(*cols)):
            f.write(str(i) + "," + ",".join(fn(v) for fn, v in zip(fmt, values)) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The seed's naive per-row pandas loop (6 reference features)")
    p.add_argument("--events", required=True)
    p.add_argument("--limit", type=int, required=True, help="use only the first N rows")
    p.add_argument("--out", default=None, help="write the features CSV (oracle format)")
    a = p.parse_args(argv)

    df = pd.read_csv(
        a.events,
        nrows=a.limit,
        usecols=["user_id", "event_timestamp", "amount", "merchant_id"],
        dtype={"user_id": "int64", "event_timestamp": "int64", "amount": "float64", "merchant_id": str},
        float_precision="round_trip",
    )
    n = len(df)
    started = time.perf_counter()
    result = naive_features(df)
    seconds = time.perf_counter() - started
    if a.out:
        write_features(a.out, result)
    print(json.dumps({
        "baseline": "seed_naive",
        "events": n,
        "seconds": round(seconds, 4),
        "events_per_s": round(n / seconds, 1) if seconds > 0 else None,
        "features": len(FEATURE_NAMES),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
