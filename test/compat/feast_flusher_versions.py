#!/usr/bin/env python3
"""Feast's get_historical_features over what the flusher wrote: a throwaway Feast repo
(feast_offline.py beside this file) whose FileSource path is the glob over a view's versions that
docs/offline-store.md documents, asked for the given entity rows.

    feast_flusher_versions.py REQUEST.json

REQUEST.json: {"path": "<root>/<view>/v_*/features.parquet" (or s3://...),
               "s3_endpoint": null or "http://...",
               "features": [{"name": ..., "aggregation": ..., "dtype": "Int64" | "Float64" | ...}],
               "entities": {"user_id": [...], "event_timestamp_ms": [...]}}

Prints one JSON line: {"asked": n, "answered": m, "rows": [{"user_id", "event_timestamp_ms",
<feature>: value or null}, ...]}, rows in Feast's order. test/integration/flusher-feast.test.ts
compares them with the parquet rows. A failure in Feast is not caught: its traceback is on stderr
and the exit code is 1.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from feast_offline import KEY, TS, feast_historical, feast_store  # noqa: E402  (beside this file)


def main(request_path: str) -> int:
    with open(request_path) as file:
        request = json.load(file)
    entities = request["entities"]
    entity_df = pd.DataFrame(
        {
            KEY: pd.Series(entities[KEY], dtype="int64"),
            TS: pd.to_datetime(pd.Series(entities["event_timestamp_ms"], dtype="int64"), unit="ms", utc=True),
        }
    )
    features = request["features"]
    with tempfile.TemporaryDirectory(prefix="tessera-feast-versions-") as repo:
        store = feast_store(request["path"], features, repo, project="tessera_flusher", s3_endpoint=request.get("s3_endpoint"))
        out, _ = feast_historical(store, entity_df, features)
    names = [f["name"] for f in features]
    millis = (out[TS] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    # Nulls as JSON null, numbers as Python numbers (json writes floats so they read back exactly).
    values = out[[KEY, *names]].astype(object).where(out[[KEY, *names]].notna(), None)
    rows = [
        {KEY: row[0], "event_timestamp_ms": int(ms), **dict(zip(names, row[1:]))}
        for row, ms in zip(values.itertuples(index=False, name=None), millis)
    ]
    print(json.dumps({"asked": len(entity_df), "answered": len(out), "rows": rows}, default=_number))
    return 0


def _number(value):
    # numpy scalars that object columns can still hold, and a last_n list's ndarray.
    if getattr(value, "ndim", 0) > 0:
        return value.tolist()
    return value.item() if hasattr(value, "item") else str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
