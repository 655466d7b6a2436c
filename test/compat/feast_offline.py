"""A throwaway Feast repo over a Tessera features.parquet, for the compatibility test
(test/compat/pit_compat.py) and the point-in-time benchmark (loadtest/baselines/feast_pit.py):
local registry, file offline store, entity user_id INT64, the view's features as a FileSource.
Also used on the flusher's own output (test/compat/feast_flusher_versions.py), where the path is
the glob over a view's versions that docs/offline-store.md documents.

`features` are dicts with "name" and "aggregation" (the oracle spec's shape); counts are Int64,
everything else Float64, unless a "dtype" names the feast.types one (e.g. "String").
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pandas as pd

KEY = "user_id"
TS = "event_timestamp"


def feast_store(
    features_path: str,
    features: list[dict],
    repo: str,
    project: str = "tessera_pit_compat",
    s3_endpoint: str | None = None,
):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
    from feast import types as feast_types

    config = RepoConfig(
        project=project,
        registry=os.path.join(repo, "registry.db"),
        provider="local",
        offline_store={"type": "file"},
        online_store={"type": "sqlite", "path": os.path.join(repo, "online.db")},
        entity_key_serialization_version=3,
        repo_path=repo,
    )
    store = FeatureStore(config=config)
    user = Entity(name="user", join_keys=[KEY], value_type=ValueType.INT64)
    source = FileSource(path=features_path, timestamp_field=TS, s3_endpoint_override=s3_endpoint)
    view = FeatureView(
        name="user_transaction_features",
        entities=[user],
        ttl=timedelta(0),  # no TTL: the windows are the features' own business
        schema=[Field(name=f["name"], dtype=_feast_type(_dtype(f))) for f in features],
        source=source,
    )
    store.apply([user, view])
    return store


def _feast_type(name: str):
    # "Float64", or "Array(Float64)" for a last_n list.
    from feast import types as feast_types

    if name.startswith("Array(") and name.endswith(")"):
        return feast_types.Array(getattr(feast_types, name[len("Array(") : -1]))
    return getattr(feast_types, name)


def _dtype(feature: dict) -> str:
    if "dtype" in feature:
        return feature["dtype"]
    return "Int64" if feature["aggregation"] in ("count", "count_distinct") else "Float64"


def feast_historical(store, entity_df: pd.DataFrame, features: list[dict]) -> tuple[pd.DataFrame, float]:
    refs = [f"user_transaction_features:{f['name']}" for f in features]
    started = time.perf_counter()
    out = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    return out, time.perf_counter() - started


