#!/usr/bin/env python3
"""Feast's SDK through a feature repo that shared/definitions/feast-repo.ts generated (and
`feast apply` registered): nothing is declared here, everything comes from the repo.

    feast_generated_repo.py REPO_DIR REQUEST.json

REQUEST.json, one of:
  {"historical": {"features": ["view:feature", ...],
                  "entities": {"<join key>": [...], "event_timestamp_ms": [...]}}}
  {"online": {"features": ["view:feature", ...]} or {"feature_service": "<name>"},
   "entity_rows": [{"<join key>": value}, ...]}
  {"schema": {"view": "<view>", "parquet": "<one features.parquet of that view>"}}

Prints one JSON line. Historical: {"asked", "answered", "rows": [{<join key>, "event_timestamp_ms",
<feature>: value or null}], "__types__": {feature: [Python type names of its non-null values]}}.
Online: Feast's to_dict() plus the same "__types__". Schema: {feature: {"declared": the dtype of
its Field in the registry, "parquet": the Feast type Feast's own type map gives its parquet column}}:
the types do not show in the values (Feast passes the parquet's through offline, and the server's
JSON online), so this is where a wrong Field type shows. test/integration/feast-repo.test.ts compares
them with the flusher's parquet rows and the server's own answers. A failure in Feast is not
caught: its traceback is on stderr and the exit code is 1.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
from feast import FeatureStore

TS = "event_timestamp"


def _types(columns: dict[str, list], names: list[str]) -> dict[str, list[str]]:
    return {name: sorted({type(v).__name__ for v in columns[name] if v is not None}) for name in names}


def historical(store: FeatureStore, request: dict) -> dict:
    entities = dict(request["entities"])
    millis = entities.pop("event_timestamp_ms")
    [key] = entities.keys()
    entity_df = pd.DataFrame(
        {key: entities[key], TS: pd.to_datetime(pd.Series(millis, dtype="int64"), unit="ms", utc=True)}
    )
    out = store.get_historical_features(entity_df=entity_df, features=request["features"]).to_df()
    names = [ref.split(":", 1)[1] for ref in request["features"]]
    at = (out[TS] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    # Nulls as None, numpy scalars as Python ones (tolist), so the types are what a user reads.
    values = out[[key, *names]].astype(object).where(out[[key, *names]].notna(), None)
    columns = {name: [_plain(v) for v in values[name].tolist()] for name in [key, *names]}
    rows = [
        {key: columns[key][i], "event_timestamp_ms": int(ms), **{n: columns[n][i] for n in names}}
        for i, ms in enumerate(at.tolist())
    ]
    return {"asked": len(entity_df), "answered": len(out), "rows": rows, "__types__": _types(columns, names)}


def online(store: FeatureStore, request: dict) -> dict:
    if "feature_service" in request:
        features = store.get_feature_service(request["feature_service"])
        names = [f.name for p in features.feature_view_projections for f in p.features]
    else:
        features = request["features"]
        names = [ref.split(":", 1)[1] for ref in features]
    values = store.get_online_features(features=features, entity_rows=request["entity_rows"]).to_dict()
    values["__types__"] = _types(values, names)
    return values


def schema(store: FeatureStore, request: dict) -> dict:
    import pyarrow.parquet as pq
    from feast.type_map import pa_to_feast_value_type
    from feast.types import from_value_type

    columns = pq.read_schema(request["parquet"])
    view = store.get_feature_view(request["view"])
    return {
        f.name: {
            "declared": str(f.dtype),
            "parquet": str(from_value_type(pa_to_feast_value_type(str(columns.field(f.name).type)))),
        }
        for f in view.features
    }


def _plain(value):
    # A list feature's cell is a numpy array: as a Python list of Python scalars.
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
        return value.tolist()
    return value.item() if hasattr(value, "item") else value


def main(repo: str, request_path: str) -> int:
    with open(request_path) as file:
        request = json.load(file)
    store = FeatureStore(repo_path=repo)
    if "historical" in request:
        answer = historical(store, request["historical"])
    elif "schema" in request:
        answer = schema(store, request["schema"])
    else:
        answer = online(store, {**request["online"], "entity_rows": request["entity_rows"]})
    print(json.dumps(answer, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
