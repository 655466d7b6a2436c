"""Feast side of loadtest/server-bench.ts: builds a feature repo and writes the snapshot online.

  feast_repo.py prepare --repo DIR --project NAME --redis "127.0.0.1:6379,db=1" --values CSV
      copies repo_template/ into DIR, fills in feature_store.yaml and turns the values CSV
      (user_id, event_timestamp in epoch ms, the six features) into the FileSource parquet.
  feast_repo.py write --repo DIR
      after `feast apply`: writes the parquet's rows to the Redis online store with
      FeatureStore.write_to_online_store (Feast's own write path, the one `feast materialize` ends in).

Prints one JSON line on stdout.
"""

import argparse
import json
import shutil
import string
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
VIEW = "user_transaction_features"
COUNTS = ["transaction_count_1h", "transaction_count_24h", "distinct_merchant_count_7d"]
DOUBLES = ["avg_transaction_amount_7d", "avg_transaction_amount_30d", "max_transaction_amount_7d"]


def parquet_path(repo: Path) -> Path:
    return repo / "data" / f"{VIEW}.parquet"


def prepare(args: argparse.Namespace) -> dict:
    repo = Path(args.repo)
    shutil.copytree(HERE / "repo_template", repo, dirs_exist_ok=True)
    yaml_path = repo / "feature_store.yaml"
    yaml_path.write_text(
        string.Template(yaml_path.read_text()).substitute(
            project=args.project, redis=args.redis, registry=str(repo / "data" / "registry.db")
        )
    )
    # Explicit dtypes: a column of whole-number averages must stay float64, counts int64.
    dtypes = {"user_id": "int64", "event_timestamp": "int64", **{c: "int64" for c in COUNTS}}
    dtypes.update({c: "float64" for c in DOUBLES})
    # round_trip: pandas' default float parser can miss the nearest double by one ulp.
    df = pd.read_csv(args.values, dtype=dtypes, float_precision="round_trip")
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], unit="ms", utc=True)
    (repo / "data").mkdir(exist_ok=True)
    df.to_parquet(parquet_path(repo), index=False)
    return {"rows": len(df), "parquet": str(parquet_path(repo))}


def write(args: argparse.Namespace) -> dict:
    from feast import FeatureStore

    repo = Path(args.repo)
    store = FeatureStore(repo_path=str(repo))
    df = pd.read_parquet(parquet_path(repo))
    started = time.perf_counter()
    for lo in range(0, len(df), args.chunk):
        store.write_to_online_store(VIEW, df.iloc[lo : lo + args.chunk])
    return {"rows": len(df), "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--repo", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--redis", required=True)
    p.add_argument("--values", required=True)
    w = sub.add_parser("write")
    w.add_argument("--repo", required=True)
    w.add_argument("--chunk", type=int, default=10_000)
    args = parser.parse_args()
    out = prepare(args) if args.command == "prepare" else write(args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
