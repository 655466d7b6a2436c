#!/usr/bin/env python3
"""Compatibility checks of Tessera's point-in-time output (services/historical) from the Python side.

    pit_compat.py --pit OUT.parquet --features FEATURES.parquet --entities ENTITIES.parquet
                  --events EVENTS.csv --spec SPEC.json [--shifted-pit OUT2.parquet --shifted-entities E2.parquet]

1. dtypes: pandas/pyarrow read OUT.parquet with user_id int64, event_timestamp tz-aware UTC,
   counts int64, averages/max float64, labels int64, and no object column holding numbers.
2. Feast: a throwaway repo (local registry, file offline store) with a FileSource over
   FEATURES.parquet (one row per event: the features before that event) answers
   get_historical_features(ENTITIES) with the same values as OUT.parquet when the entity rows
   are transactions (Feast's as-of join takes the latest row at or before t, which is then the
   transaction's own row).
3. Oracle: test/oracle/oracle.py, run on EVENTS.csv, gives the same values for every row
   (ENTITIES carries `event_row`, the row of the transaction in EVENTS.csv).
With --shifted-*: the same Feast query at times that are NOT event times (t + 30 min) is
compared too and the differences are counted: they are expected (Feast does not decay windows
between events), and reported for the docs.

Prints one JSON line: {"dtypes_ok": ..., "feast_rows": ..., "feast_mismatches": ..., ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
import oracle  # noqa: E402  (the seed's independent loop)
from feast_offline import feast_historical, feast_store  # noqa: E402  (beside this file)

KEY = "user_id"
TS = "event_timestamp"


def check_dtypes(path: str, features: list[dict]) -> dict:
    df = pd.read_parquet(path)
    problems = []
    if str(df[KEY].dtype) != "int64":
        problems.append(f"{KEY} is {df[KEY].dtype}")
    ts = df[TS].dtype
    if not (isinstance(ts, pd.DatetimeTZDtype) and str(ts.tz) == "UTC"):
        problems.append(f"{TS} is {ts}, not tz-aware UTC")
    for f in features:
        want = "int64" if f["aggregation"] in ("count", "count_distinct") else "float64"
        got = str(df[f["name"]].dtype)
        if got != want:
            problems.append(f"{f['name']} is {got}, expected {want}")
    for name, dtype in df.dtypes.items():
        if dtype == object and pd.api.types.infer_dtype(df[name], skipna=True) in ("integer", "floating", "mixed-integer-float"):
            problems.append(f"{name} holds numbers as objects")
    arrow_schema = pq.read_schema(path)
    return {
        "dtypes_ok": not problems,
        "dtype_problems": problems,
        "pandas_dtypes": {k: str(v) for k, v in df.dtypes.items()},
        "arrow_schema": {f.name: str(f.type) for f in arrow_schema},
    }


def compare(ours: pd.DataFrame, theirs: pd.DataFrame, features: list[dict]) -> dict:
    """Join on (user_id, event_timestamp): Feast keeps one row per such pair, so do we here."""
    a = ours.drop_duplicates([KEY, TS]).set_index([KEY, TS]).sort_index()
    b = theirs.drop_duplicates([KEY, TS]).set_index([KEY, TS]).sort_index()
    common = a.index.intersection(b.index)
    mismatches = 0
    by_feature = {}
    examples = []
    for f in features:
        x = a.loc[common, f["name"]].to_numpy(dtype=float)
        y = b.loc[common, f["name"]].to_numpy(dtype=float)
        bad = ~((x == y) | (np.isnan(x) & np.isnan(y)))
        by_feature[f["name"]] = int(bad.sum())
        mismatches += int(bad.sum())
        for i in np.flatnonzero(bad)[:2]:
            examples.append({"user_id": int(common[i][0]), "t": str(common[i][1]), "feature": f["name"],
                             "tessera": float(x[i]), "feast": float(y[i])})
    return {"rows_compared": int(len(common)), "rows_ours": int(len(a)), "rows_feast": int(len(b)),
            "mismatches": mismatches, "by_feature": by_feature, "examples": examples[:6]}


def check_oracle(pit: pd.DataFrame, events_csv: str, features: list[dict]) -> dict:
    columns = oracle.read_events(events_csv)
    started = time.perf_counter()
    results = oracle.compute(columns, features)
    seconds = time.perf_counter() - started
    rows = pit["event_row"].to_numpy()
    mismatches = 0
    examples = []
    for k, f in enumerate(features):
        want = np.array([np.nan if results[r][k] is None else float(results[r][k]) for r in rows])
        got = pit[f["name"]].to_numpy(dtype=float)
        bad = ~((want == got) | (np.isnan(want) & np.isnan(got)))
        mismatches += int(bad.sum())
        for i in np.flatnonzero(bad)[:2]:
            examples.append({"row": int(i), "feature": f["name"], "tessera": float(got[i]), "oracle": float(want[i])})
    return {"oracle_rows": int(len(rows)), "oracle_mismatches": mismatches, "oracle_examples": examples,
            "oracle_seconds": round(seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pit", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--entities", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--shifted-pit")
    p.add_argument("--shifted-entities")
    a = p.parse_args(argv)
    features = oracle.load_spec(a.spec)

    report = check_dtypes(a.pit, features)
    pit = pd.read_parquet(a.pit)
    entity_df = pd.read_parquet(a.entities)
    with tempfile.TemporaryDirectory(prefix="tessera-feast-") as repo:
        store = feast_store(os.path.abspath(a.features), features, repo)
        theirs, seconds = feast_historical(store, entity_df, features)
        same = compare(pit, theirs, features)
        report.update({f"feast_{k}": v for k, v in same.items()})
        report["feast_seconds"] = round(seconds, 3)
        if a.shifted_pit and a.shifted_entities:
            shifted_theirs, _ = feast_historical(store, pd.read_parquet(a.shifted_entities), features)
            shifted = compare(pd.read_parquet(a.shifted_pit), shifted_theirs, features)
            report.update({f"shifted_{k}": v for k, v in shifted.items()})
    report.update(check_oracle(pit, a.events, features))
    print(json.dumps(report, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
