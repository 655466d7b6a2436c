#!/usr/bin/env python3
"""Development-only event generator for the Python oracle and baselines.

The project's real generator is written in TypeScript; this one exists so the
oracle and the baselines can be exercised on their own. It writes the
interchange events CSV (see test/oracle/README.md):

    user_id,event_timestamp,amount,merchant_id,partition,offset

What it puts in on purpose:
  * Zipf-distributed users (a top user gets a few percent of all events) and
    Zipf-distributed merchants;
  * bursts (several events of a user within a couple of minutes);
  * ties (an event of a user at exactly the timestamp of an earlier one);
  * events exactly at window edges (ts = other_ts + W, + W - 1, + W + 1 for
    the reference windows 1h, 24h, 7d, 30d);
  * out-of-order arrival (a fraction of events arrive up to --max-lateness-ms
    after later-stamped events);
  * amounts with cents, and a few with up to 17 significant digits;
  * integer epoch-millisecond timestamps over --days days.

Deterministic for a given --seed. Uses numpy (plus stdlib).

Usage: dev_gen.py --n 100000 --seed 1 --out /tmp/events.csv
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

HOUR = 3_600_000
DAY = 24 * HOUR
EDGE_WINDOWS = (HOUR, DAY, 7 * DAY, 30 * DAY)
BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def zipf_probabilities(n: int, s: float) -> np.ndarray:
    ranks = np.arange(1, n + 1, dtype=np.float64)
    weights = ranks ** (-s)
    return weights / weights.sum()


def generate(n: int, seed: int, days: int, n_users: int, user_s: float,
             n_merchants: int, merchant_s: float, partitions: int,
             max_lateness_ms: int, late_fraction: float) -> list[tuple]:
    rng = np.random.default_rng(seed)
    span = days * DAY

    # Popularity rank -> user id. Ids are shuffled so popularity is not ordered
    # by id; a couple of ids above 2**53 check int64 handling end to end.
    user_ids = rng.choice(np.arange(1_000_000, 1_000_000 + 50 * n_users), size=n_users, replace=False)
    user_ids = [int(x) for x in user_ids]
    if n_users > 10:
        user_ids[5] = 2**53 + 1
        user_ids[7] = 2**62 + 12345
    user_rank = rng.choice(n_users, size=n, p=zipf_probabilities(n_users, user_s))
    merchant_rank = rng.choice(n_merchants, size=n, p=zipf_probabilities(n_merchants, merchant_s))
    kind = rng.random(n)

    history: dict[int, list[int]] = {}
    timestamps = np.empty(n, dtype=np.int64)
    for i in range(n):
        u = int(user_rank[i])
        past = history.get(u)
        k = kind[i]
        ts = None
        if past:
            ref = past[int(rng.integers(len(past)))]
            if k < 0.10:  # burst: shortly after an earlier event of the same user
                ts = ref + int(rng.integers(1, 120_000))
            elif k < 0.18:  # tie: exactly the same timestamp
                ts = ref
            elif k < 0.25:  # exactly at a window edge (or 1 ms either side)
                w = EDGE_WINDOWS[int(rng.integers(len(EDGE_WINDOWS)))]
                ts = ref + w + int(rng.choice((-1, 0, 0, 0, 1)))
                if ts >= BASE_MS + span:
                    ts = ref - w  # the edge seen from the other side
        if ts is None or ts < BASE_MS or ts >= BASE_MS + span:
            ts = BASE_MS + int(rng.integers(span))
        timestamps[i] = ts
        history.setdefault(u, []).append(ts)

    # Amounts: mostly with cents, a few with many significant digits.
    raw = rng.lognormal(mean=3.5, sigma=1.3, size=n)
    amount_kind = rng.random(n)
    amounts = []
    for i in range(n):
        a = float(raw[i])
        if amount_kind[i] < 0.01:
            amounts.append(repr(a))  # up to 17 significant digits
        elif amount_kind[i] < 0.02:
            amounts.append(f"{round(a):d}")  # whole number, no decimal point
        else:
            amounts.append(f"{a:.2f}")

    # Arrival order: by event time, except that a fraction of events is late
    # by up to max_lateness_ms (so they arrive after later-stamped events).
    delay = np.where(rng.random(n) < late_fraction, rng.integers(0, max_lateness_ms + 1, size=n), 0)
    arrival = np.lexsort((np.arange(n), timestamps + delay))

    rows = []
    next_offset = [0] * partitions
    for i in arrival:
        uid = user_ids[int(user_rank[i])]
        part = uid % partitions
        rows.append((uid, int(timestamps[i]), amounts[i], f"m_{int(merchant_rank[i])}", part, next_offset[part]))
        next_offset[part] += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="number of events")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--users", type=int, default=None, help="number of users (default n/5, at least 10)")
    p.add_argument("--user-s", type=float, default=0.9, help="Zipf exponent for users")
    p.add_argument("--merchants", type=int, default=5000)
    p.add_argument("--merchant-s", type=float, default=1.1)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--max-lateness-ms", type=int, default=5 * 60_000)
    p.add_argument("--late-fraction", type=float, default=0.05)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    n_users = a.users if a.users is not None else max(10, a.n // 5)
    rows = generate(a.n, a.seed, a.days, n_users, a.user_s, a.merchants, a.merchant_s,
                    a.partitions, a.max_lateness_ms, a.late_fraction)
    with open(a.out, "w", encoding="utf-8", newline="") as f:
        f.write("user_id,event_timestamp,amount,merchant_id,partition,offset\n")
        for r in rows:
            f.write("%d,%d,%s,%s,%d,%d\n" % r)
    print(f"wrote {len(rows)} events to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
