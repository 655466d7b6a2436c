#!/usr/bin/env python3
"""Baseline of the flush benchmark: what a Python pipeline does to write the same features.parquet.

flush-bench.ts hands over the very columns it writes (Arrow IPC stream files, one per file of the
flush); this reads them into pyarrow tables (untimed), then writes each as parquet to the same S3
server with pyarrow's own S3 filesystem, one object per file as the flusher writes them:

    pq.write_table(table, "<bucket>/<prefix>/part-<f>.parquet", filesystem=s3, compression=...)

    pyarrow_write.py --ipc F [--ipc F ...] --bucket B --prefix P [--compression snappy]
                     [--repeat 3] (S3 endpoint and keys from TESSERA_S3_* or the local stack's)

Prints ONE JSON line on stdout:
    {"baseline": "pyarrow_write", "rows": N, "files": F, "seconds_rounds": [...],
     "rows_per_s": R, "pyarrow": "<version>"}
"rows_per_s" is N over the best round (flush-bench reports its own stages as the best of
--repeat rounds too), after one untimed warm-up round (connections, lazy imports).

Dependencies: Python 3.11, pyarrow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# pyarrow's AWS SDK sends optional CRC checksums and asks GetObject for them; S3Proxy (the local
# stack) answers 501 NotImplemented. Only when an API requires them (as docs/offline-store.md says):
os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")

import pyarrow as pa  # noqa: E402
import pyarrow.fs as fs  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="pyarrow write_table to S3: the flush benchmark's baseline")
    p.add_argument("--ipc", action="append", required=True, help="an Arrow IPC stream file (repeatable)")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--compression", default="snappy", choices=["snappy", "zstd", "none"])
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    if a.repeat < 1:
        p.error("--repeat: give a whole number >= 1")

    tables = []
    for path in a.ipc:
        with pa.OSFile(path, "rb") as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    rows = sum(t.num_rows for t in tables)
    endpoint = os.environ.get("TESSERA_S3_ENDPOINT", "http://127.0.0.1:8333")
    s3 = fs.S3FileSystem(
        endpoint_override=endpoint,
        scheme="https" if endpoint.startswith("https://") else "http",
        access_key=os.environ.get("TESSERA_S3_ACCESS_KEY_ID", "tessera-local"),
        secret_key=os.environ.get("TESSERA_S3_SECRET_ACCESS_KEY", "tessera-local-secret"),
        region=os.environ.get("TESSERA_S3_REGION", "us-east-1"),
    )
    compression = None if a.compression == "none" else a.compression

    def write(round_name: str) -> float:
        started = time.perf_counter()
        for f, table in enumerate(tables):
            pq.write_table(
                table,
                f"{a.bucket}/{a.prefix}/{round_name}/part-{f}.parquet",
                filesystem=s3,
                compression=compression,
            )
        return time.perf_counter() - started

    write("warmup")
    rounds = [write(str(r)) for r in range(a.repeat)]
    print(
        json.dumps(
            {
                "baseline": "pyarrow_write",
                "rows": rows,
                "files": len(tables),
                "seconds_rounds": [round(r, 4) for r in rounds],
                "rows_per_s": round(rows / min(rounds), 1),
                "pyarrow": pa.__version__,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
