"""Reads every parquet file the flusher wrote (downloaded under a directory) with pandas and
pyarrow, and prints one JSON line per file: the pyarrow schema, the pandas dtypes, the row count
and the first row. test/integration/flusher-layout.test.ts asserts on it.

Usage: python test/compat/flusher_dtypes.py <dir>
"""

import json
import pathlib
import sys

import pandas as pd
import pyarrow.parquet as pq


def main(root: str) -> None:
    for path in sorted(pathlib.Path(root).rglob("*.parquet")):
        table = pq.read_table(path)
        frame = pd.read_parquet(path)
        first = frame.iloc[0].to_dict() if len(frame) else {}
        print(
            json.dumps(
                {
                    "file": str(path.relative_to(root)),
                    "rows": len(frame),
                    "arrow": {f.name: str(f.type) for f in table.schema},
                    "pandas": {c: str(t) for c, t in frame.dtypes.items()},
                    "first": {k: (v.isoformat() if hasattr(v, "isoformat") else repr(v)) for k, v in first.items()},
                }
            )
        )
    # The CSV copies read back with the same row counts.
    for path in sorted(pathlib.Path(root).rglob("features.csv")):
        frame = pd.read_csv(path)
        print(json.dumps({"file": str(path.relative_to(root)), "rows": len(frame), "csv": True}))


if __name__ == "__main__":
    main(sys.argv[1])
