#!/usr/bin/env python3
"""Point-in-time baselines for loadtest/pit-bench.ts, over the same files as Tessera:

  feast   Feast's get_historical_features (file offline store, dask) over a FileSource of
          features.parquet (one row per event: the features before it), entity dataframe as given.
  asof    pandas merge_asof(direction="backward", by="user_id") of the same two tables: what
          Feast's as-of join does, written directly.

Both need the feature table precomputed (Tessera computes from the raw log instead). With the
entity rows being transactions, both equal Tessera's [t - W, t) values (test/compat/pit_compat.py).

    feast_pit.py --mode feast|asof --features DIR_OR_FILE --entities ENTITIES.parquet
                 [--ours OURS.parquet] [--sample 100000]

Prints ONE JSON line: {"baseline", "rows", "seconds", "rows_per_s", "compared", "mismatches",
"examples"}. "seconds" is the retrieval only (Feast: get_historical_features(...).to_df(), the
registry apply not included; asof: reading both tables, sorting and merging), not the comparison.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "compat"))
from feast_offline import feast_historical, feast_store  # noqa: E402  (shared with the compat test)

KEY = "user_id"
TS = "event_timestamp"
FEATURES = [
    ("transaction_count_1h", "int"),
    ("transaction_count_24h", "int"),
    ("avg_transaction_amount_7d", "float"),
    ("avg_transaction_amount_30d", "float"),
    ("max_transaction_amount_7d", "float"),
    ("distinct_merchant_count_7d", "int"),
]
NAMES = [name for name, _ in FEATURES]


def run_feast(features_path: str, entity_df: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    # The same throwaway repo as the compatibility test; only the retrieval is timed.
    specs = [{"name": n, "aggregation": "count" if k == "int" else "avg"} for n, k in FEATURES]
    with tempfile.TemporaryDirectory(prefix="tessera-feast-bench-") as repo:
        store = feast_store(features_path, specs, repo, project="tessera_pit_bench")
        return feast_historical(store, entity_df, specs)


def run_asof(features_path: str, entity_df: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    paths = sorted(glob.glob(os.path.join(features_path, "*.parquet"))) if os.path.isdir(features_path) else [features_path]
    table = pd.concat([pd.read_parquet(p, columns=[KEY, TS, *NAMES]) for p in paths], ignore_index=True)
    left = entity_df.sort_values(TS, kind="stable")
    right = table.sort_values(TS, kind="stable")
    out = pd.merge_asof(left, right, on=TS, by=KEY, direction="backward", allow_exact_matches=True)
    return out, time.perf_counter() - started


def compare(ours_path: str, theirs: pd.DataFrame, sample: int) -> dict:
    ours = pd.read_parquet(ours_path, columns=[KEY, TS, *NAMES]).drop_duplicates([KEY, TS])
    theirs = theirs[[KEY, TS, *NAMES]].drop_duplicates([KEY, TS])
    theirs = theirs.assign(**{TS: pd.to_datetime(theirs[TS], utc=True).astype(ours[TS].dtype)})
    if len(ours) > sample:
        ours = ours.sample(n=sample, random_state=1)
    joined = ours.merge(theirs, on=[KEY, TS], how="left", suffixes=("", "__theirs"), indicator=True)
    missing = int((joined["_merge"] != "both").sum())
    mismatches = 0
    examples = []
    for n in NAMES:
        x = joined[n].to_numpy(dtype=float)
        y = joined[f"{n}__theirs"].to_numpy(dtype=float)
        bad = ~((x == y) | (np.isnan(x) & np.isnan(y)))
        mismatches += int(bad.sum())
        for i in np.flatnonzero(bad)[:3]:
            examples.append({"user_id": int(joined[KEY].iloc[i]), "t": str(joined[TS].iloc[i]), "feature": n,
                             "tessera": float(x[i]), "baseline": float(y[i])})
    return {"compared": int(len(joined)), "missing": missing, "mismatches": mismatches, "examples": examples[:6]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Feast / pandas merge_asof point-in-time baselines")
    p.add_argument("--mode", choices=("feast", "asof"), required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--entities", required=True)
    p.add_argument("--ours")
    p.add_argument("--sample", type=int, default=100_000)
    a = p.parse_args(argv)
    entity_df = pd.read_parquet(a.entities)
    fn = run_feast if a.mode == "feast" else run_asof
    out, seconds = fn(a.features, entity_df)
    report = {
        "baseline": a.mode,
        "rows": int(len(entity_df)),
        "seconds": round(seconds, 3),
        "rows_per_s": round(len(entity_df) / seconds, 1) if seconds > 0 else None,
    }
    if a.ours:
        report.update(compare(a.ours, out, a.sample))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
