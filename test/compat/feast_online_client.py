"""Feast's own Python SDK against the Tessera online server.

A throwaway Feast repo declares the reference feature view with a *remote* online store pointing
at our server (bearer token from an env var, Feast's OIDC-client token option), then asks
`FeatureStore.get_online_features` for the given users. Prints the SDK's `to_dict()` as JSON, plus
`__types__`: the Python types of each feature's values, so the calling test compares what a Feast
user would get with the server's own answer, types included; and `__write__`: what the SDK's
`write_to_online_store` raised (the server takes events, not feature values).

usage: feast_online_client.py <server-url> <token-env-var> <user_id,...>
"""

import json
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

FEATURES = {
    "transaction_count_1h": Int64,
    "transaction_count_24h": Int64,
    "avg_transaction_amount_7d": Float64,
    "avg_transaction_amount_30d": Float64,
    "max_transaction_amount_7d": Float64,
    "distinct_merchant_count_7d": Int64,
}


def main() -> None:
    url, token_env, users_arg = sys.argv[1], sys.argv[2], sys.argv[3]
    users = [int(u) for u in users_arg.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        # The batch source is only declared (the remote store never reads it); an empty file keeps
        # `apply` happy about the path.
        source_path = repo / "features.parquet"
        pd.DataFrame(
            {"user_id": pd.Series([], dtype="int64"), "event_timestamp": pd.Series([], dtype="datetime64[ns, UTC]")}
        ).to_parquet(source_path)
        (repo / "feature_store.yaml").write_text(
            "\n".join(
                [
                    "project: tessera_compat",
                    f"registry: {repo / 'registry.db'}",
                    "provider: local",
                    "online_store:",
                    "  type: remote",
                    f"  path: {url}",
                    "offline_store:",
                    "  type: file",
                    "auth:",
                    "  type: oidc",
                    f"  token_env_var: {token_env}",
                    "entity_key_serialization_version: 3",
                    "",
                ]
            )
        )
        store = FeatureStore(repo_path=str(repo))
        user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
        view = FeatureView(
            name="user_transaction_features",
            entities=[user],
            ttl=timedelta(days=30),
            schema=[Field(name=name, dtype=dtype) for name, dtype in FEATURES.items()],
            source=FileSource(path=str(source_path), timestamp_field="event_timestamp"),
            online=True,
        )
        store.apply([user, view])
        response = store.get_online_features(
            features=[f"user_transaction_features:{name}" for name in FEATURES],
            entity_rows=[{"user_id": u} for u in users],
        )
        values = response.to_dict()
        # The Python types the SDK gave each feature (it types a value by its JSON: 50 is an int).
        values["__types__"] = {
            name: sorted({type(v).__name__ for v in values[name] if v is not None}) for name in FEATURES
        }
        # Writing feature values through the SDK: the server refuses it (it computes features from
        # events), and the SDK's error must carry the server's reason.
        row = {"user_id": [users[0]], "event_timestamp": [pd.Timestamp.now(tz="UTC")]}
        row.update({name: [1] for name in FEATURES})
        try:
            store.write_to_online_store("user_transaction_features", pd.DataFrame(row))
            values["__write__"] = "accepted"
        except Exception as error:  # noqa: BLE001 - the message is what the test checks
            values["__write__"] = f"{type(error).__name__}: {error}"
        print(json.dumps(values))


if __name__ == "__main__":
    main()
