#!/usr/bin/env python3
"""Self-checks of the oracle on hand-computed examples (no pytest needed).

    ${TESSERA_PYTHON:-python3} test/oracle/test_oracle.py

Prints one line per failing check, then "N passed, N failed"; exits 1 on any
failure. Needs numpy (the oracle uses it).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import oracle  # noqa: E402


def feat(name, aggregation, window_ms, column=None, tile_ms=None, default=None):
    return {"name": name, "aggregation": aggregation, "column": column,
            "window_ms": window_ms, "tile_ms": tile_ms, "default": default}


def run(events, features):
    """events: list of (user_id, ts, amount, merchant_id) in input order.
    Returns the formatted output fields, one list per row (what the CSV would hold)."""
    features = oracle.validate_spec({"features": features})
    columns = {name: [] for name in oracle.EVENT_COLUMNS}
    for k, (u, ts, amount, merchant) in enumerate(events):
        columns["user_id"].append(u)
        columns["event_timestamp"].append(ts)
        columns["amount"].append(float(amount))
        columns["merchant_id"].append(merchant)
        columns["partition"].append(0)
        columns["offset"].append(k)
    results = oracle.compute(columns, features)
    return [[oracle.format_value(f["aggregation"], v) for f, v in zip(features, row)] for row in results]


def column(rows, k):
    return [r[k] for r in rows]


# --------------------------------------------------------------------------- checks


def test_event_at_exactly_t_is_excluded():
    rows = run([(1, 1000, 1.0, "a"), (1, 2000, 2.0, "b")],
               [feat("c", "count", 10_000), feat("s", "sum", 10_000, "amount")])
    assert rows == [["0", "0.0"], ["1", "1.0"]], rows


def test_ties_see_the_same_window_and_not_each_other():
    events = [
        (1, 5000, 1.0, "a"),
        (1, 5000, 2.0, "b"),
        (1, 5000, 3.0, "c"),
        (1, 4000, 10.0, "d"),
        (2, 4500, 99.0, "x"),  # other user: never counted for user 1
        (1, 6000, 4.0, "e"),
    ]
    rows = run(events, [feat("c", "count", 10_000), feat("s", "sum", 10_000, "amount"),
                        feat("m", "max", 10_000, "amount")])
    assert rows[0] == rows[1] == rows[2] == ["1", "10.0", "10.0"], rows
    assert rows[3] == ["0", "0.0", ""], rows[3]
    assert rows[4] == ["0", "0.0", ""], rows[4]
    assert rows[5] == ["4", "16.0", "10.0"], rows[5]


def test_left_edge_t_minus_w_is_included():
    events = [(1, 0, 1.0, "a"), (1, 1000, 2.0, "a"), (1, 1999, 4.0, "a"), (1, 2000, 8.0, "a"), (1, 3000, 16.0, "a")]
    rows = run(events, [feat("c", "count", 1000), feat("s", "sum", 1000, "amount")])
    assert column(rows, 0) == ["0", "1", "1", "2", "1"], rows
    assert column(rows, 1) == ["0.0", "1.0", "2.0", "6.0", "8.0"], rows


def test_empty_window_defaults():
    features = [
        feat("count", "count", 1000),
        feat("sum", "sum", 1000, "amount"),
        feat("avg0", "avg", 1000, "amount", default=0.0),
        feat("avgnull", "avg", 1000, "amount"),
        feat("min5", "min", 1000, "amount", default=5),
        feat("maxnull", "max", 1000, "amount"),
        feat("distinct", "count_distinct", 1000, "merchant_id"),
    ]
    rows = run([(1, 1000, 3.0, "a"), (1, 9000, 4.0, "b")], features)
    assert rows[0] == ["0", "0.0", "0.0", "", "5.0", "", "0"], rows[0]
    assert rows[1] == rows[0], rows[1]  # 8 s later: the 1 s window is empty again


def test_non_empty_window_ignores_default():
    rows = run([(1, 0, 3.0, "a"), (1, 10, 4.0, "b")],
               [feat("a", "avg", 1000, "amount", default=0.0), feat("m", "min", 1000, "amount", default=-1.0)])
    assert rows[1] == ["3.0", "3.0"], rows[1]


def test_tiled_start_rounds_down_to_epoch_tiles():
    ws = oracle.window_start
    assert ws(2600, 1000, None) == 1600
    assert ws(2600, 1000, 300) == 1500
    assert ws(1900, 1000, 300) == 900  # already on a tile boundary: unchanged
    assert ws(500, 1000, 300) == -600  # floor toward minus infinity, not toward zero (-300)
    assert ws(1_704_067_265_432, 3_600_000, 60_000) == 1_704_063_660_000


def test_tiled_window_membership():
    stamps = [-601, -600, -1, 1499, 1500, 2599, 2600, 500]
    events = [(1, ts, 1.0, "a") for ts in stamps]
    rows = run(events, [feat("tiled", "count", 1000, tile_ms=300), feat("exact", "count", 1000)])
    #            -601 -600  -1  1499 1500 2599 2600  500
    tiled = ["0", "1", "2", "1", "2", "1", "2", "2"]
    exact = ["0", "1", "2", "1", "2", "0", "1", "1"]
    assert column(rows, 0) == tiled, column(rows, 0)
    assert column(rows, 1) == exact, column(rows, 1)


def test_out_of_order_rows_all_count_and_output_keeps_input_order():
    events = [(1, 3000, 3.0, "a"), (1, 1000, 1.0, "b"), (1, 2000, 2.0, "c"), (2, 1500, 7.0, "d")]
    rows = run(events, [feat("c", "count", 10_000), feat("a", "avg", 10_000, "amount")])
    assert rows == [["2", "1.5"], ["0", ""], ["1", "1.0"], ["0", ""]], rows


def test_sums_are_exactly_rounded_and_order_independent():
    base = [(1, 1, 0.1, "a"), (1, 2, 0.2, "a"), (1, 3, 0.3, "a")]
    reader = (1, 10, 0.0, "a")
    features = [feat("s", "sum", 100, "amount"), feat("a", "avg", 100, "amount")]
    seen = set()
    for perm in itertools.permutations(base):
        rows = run(list(perm) + [reader], features)
        seen.add(tuple(rows[3]))
    assert seen == {("0.6", repr(math.fsum([0.1, 0.2, 0.3]) / 3))}, seen  # naive 0.1+0.2+0.3 = 0.6000000000000001


def test_count_distinct_min_max():
    events = [(1, 10, 5.0, "m_1"), (1, 20, -2.5, "m_2"), (1, 30, 7.25, "m_1"), (1, 40, 1.0, "m_3"), (1, 50, 0.0, "m_9")]
    rows = run(events, [feat("d", "count_distinct", 35, "merchant_id"), feat("lo", "min", 35, "amount"),
                        feat("hi", "max", 35, "amount")])
    # row at 50: window [15, 50) holds 20, 30, 40
    assert rows[4] == ["3", "-2.5", "7.25"], rows[4]
    # row at 40: window [5, 40) holds 10, 20, 30 -> merchants m_1, m_2
    assert rows[3] == ["2", "-2.5", "7.25"], rows[3]


def test_count_distinct_on_a_numeric_column():
    events = [(1, 1, 2.0, "a"), (1, 2, 2.0, "b"), (1, 3, 3.0, "c"), (1, 4, 0.0, "d")]
    rows = run(events, [feat("d", "count_distinct", 100, "amount")])
    assert rows[3] == ["2"], rows


def test_spec_validation_rejects_bad_specs():
    bad = [
        {"features": []},
        {"features": [feat("x", "median", 1000, "amount")]},
        {"features": [feat("x", "avg", 1000)]},  # avg needs a column
        {"features": [feat("x", "sum", 1000, "merchant_id")]},  # numeric aggregation of a string
        {"features": [feat("x", "count", 0)]},
        {"features": [feat("x", "count", 1000, tile_ms=0)]},
        {"features": [feat("x", "count", 1000), feat("x", "count", 2000)]},  # duplicate name
        {"features": [feat("x", "avg", 1000, "amount", default="zero")]},
    ]
    for spec in bad:
        try:
            oracle.validate_spec(spec)
        except oracle.SpecError:
            continue
        raise AssertionError(f"accepted a bad spec: {spec}")


def test_cli_end_to_end():
    events_csv = (
        "user_id,event_timestamp,amount,merchant_id,partition,offset\n"
        "9007199254740993,1704067200000,12.30,m_1,0,0\n"   # 2**53 + 1
        "9007199254740992,1704067200000,1.00,m_2,1,0\n"    # 2**53: a different user
        "9007199254740993,1704070800000,0.10000000000000001,m_2,0,1\n"  # exactly 1h later
        "9007199254740993,1704067200000,7,m_3,0,2\n"       # late, tied with row 0
        "9007199254740993,1704070800001,100.5,m_1,0,3\n"
    )
    spec = {"features": [
        feat("transaction_count_1h", "count", 3_600_000),
        feat("avg_transaction_amount_7d", "avg", 7 * 86_400_000, "amount", default=0.0),
        feat("max_1h_tiled", "max", 3_600_000, "amount", tile_ms=60_000),
        feat("distinct_merchant_count_7d", "count_distinct", 7 * 86_400_000, "merchant_id"),
    ]}
    with tempfile.TemporaryDirectory() as d:
        ev, sp, out = (os.path.join(d, x) for x in ("events.csv", "spec.json", "out.csv"))
        with open(ev, "w") as f:
            f.write(events_csv)
        with open(sp, "w") as f:
            json.dump(spec, f)
        proc = subprocess.run([sys.executable, os.path.join(HERE, "oracle.py"), "--events", ev, "--spec", sp,
                               "--out", out, "--quiet"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        with open(out) as f:
            text = f.read()
    expected = (
        "row,transaction_count_1h,avg_transaction_amount_7d,max_1h_tiled,distinct_merchant_count_7d\n"
        "0,0,0.0,,0\n"
        "1,0,0.0,,0\n"
        f"2,2,{repr(math.fsum([12.3, 7.0]) / 2)},12.3,2\n"
        "3,0,0.0,,0\n"
        f"4,1,{repr(math.fsum([12.3, 0.1, 7.0]) / 3)},12.3,3\n"
    )
    assert text == expected, f"\n{text}\n!=\n{expected}"


def test_redelivered_rows_count_once():
    # Rows repeating a (partition, offset) of the same user are one record delivered twice.
    features = oracle.validate_spec({"features": [
        feat("c", "count", 10_000), feat("s", "sum", 10_000, "amount"),
        feat("d", "count_distinct", 10_000, "merchant_id")]})
    rows = [  # user, ts, amount, merchant, partition, offset
        (1, 1000, 1.0, "a", 0, 0),
        (1, 2000, 2.0, "b", 0, 1),
        (1, 1000, 1.0, "a", 0, 0),   # redelivery of row 0
        (2, 1000, 5.0, "a", 0, 0),   # another user: its own record
        (1, 1500, 4.0, "c", 1, 1),   # another partition, same offset: another record
        (1, 2000, 2.0, "b", 0, 1),   # redelivery of row 1
        (1, 3000, 8.0, "d", 0, 2),
    ]
    columns = {name: [r[k] for r in rows] for k, name in enumerate(oracle.EVENT_COLUMNS)}
    out = [[oracle.format_value(f["aggregation"], v) for f, v in zip(features, r)]
           for r in oracle.compute(columns, features)]
    assert out[6] == ["3", "7.0", "3"], out[6]         # rows 0, 1, 4; not their repeats
    assert out[2] == out[0] == ["0", "0.0", "0"], out   # a repeat gets the original's values
    assert out[5] == out[1] == ["2", "5.0", "2"], out
    assert out[3] == ["0", "0.0", "0"], out
    # Without position columns every row is its own record.
    for name in oracle.POSITION_COLUMNS:
        columns[name] = []
    counts = [r[0] for r in oracle.compute(columns, features)]
    assert counts[6] == 5, counts


def test_cli_reads_events_without_position_columns():
    with tempfile.TemporaryDirectory() as d:
        ev, sp, out = (os.path.join(d, x) for x in ("events.csv", "spec.json", "out.csv"))
        with open(ev, "w") as f:
            f.write("user_id,event_timestamp,amount,merchant_id\n1,1000,1.5,a\n1,1000,1.5,a\n1,2000,1,b\n")
        with open(sp, "w") as f:
            json.dump({"features": [feat("c", "count", 10_000)]}, f)
        proc = subprocess.run([sys.executable, os.path.join(HERE, "oracle.py"), "--events", ev, "--spec", sp,
                               "--out", out, "--quiet"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        with open(out) as f:
            assert f.read() == "row,c\n0,0\n1,0\n2,2\n"


def test_cli_rejects_bad_header():
    with tempfile.TemporaryDirectory() as d:
        ev, sp, out = (os.path.join(d, x) for x in ("events.csv", "spec.json", "out.csv"))
        with open(ev, "w") as f:
            f.write("user,ts,amount\n1,2,3\n")
        with open(sp, "w") as f:
            json.dump({"features": [feat("c", "count", 1000)]}, f)
        proc = subprocess.run([sys.executable, os.path.join(HERE, "oracle.py"), "--events", ev, "--spec", sp,
                               "--out", out, "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 2 and "header" in proc.stderr, (proc.returncode, proc.stderr)


def main() -> int:
    checks = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in checks:
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name}", file=sys.stderr)
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
