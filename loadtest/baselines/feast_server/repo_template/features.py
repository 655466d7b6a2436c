# The fraud reference view as Feast declares it: same entity, same six features and types as
# definitions/fraud.yaml. The parquet holds the snapshot the benchmark writes online.
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)

snapshot = FileSource(
    name="user_transaction_features_snapshot",
    path=str(Path(__file__).resolve().parent / "data" / "user_transaction_features.parquet"),
    timestamp_field="event_timestamp",
)

# ttl mirrors the view's max_age (30d); every user of the benchmark has an event within it.
user_transaction_features = FeatureView(
    name="user_transaction_features",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="transaction_count_1h", dtype=Int64),
        Field(name="transaction_count_24h", dtype=Int64),
        Field(name="avg_transaction_amount_7d", dtype=Float64),
        Field(name="avg_transaction_amount_30d", dtype=Float64),
        Field(name="max_transaction_amount_7d", dtype=Float64),
        Field(name="distinct_merchant_count_7d", dtype=Int64),
    ],
    online=True,
    source=snapshot,
)

fraud_model_v1 = FeatureService(name="fraud_model_v1", features=[user_transaction_features])
