// An independent, deliberately naive reference for the engine tests: for a read at t, filter the
// events whose time lies in the window (rounding written out here, not imported) and aggregate them
// with plain loops. Slow and obviously right.
import type { FeatureDef } from '../../shared/definitions/schema.ts';
import type { FraudEvent } from '../../shared/synth/fraud-events.ts';

export interface NaiveEvent {
  ts: number;
  partition: number;
  offset: number;
  amount: number | null;
  /** A string, or a boolean or an int64 (number or decimal string) when the tests declare it so. */
  merchant: string | number | boolean | null;
}

export interface NaiveFeature {
  aggregation: string;
  column: 'amount' | 'merchant' | null;
  windowMs: number;
  tileMs: number;
  default: number | string | null;
  n: number;
}

export function naiveValue(events: readonly NaiveEvent[], f: NaiveFeature, t: number): unknown {
  const start = f.tileMs > 0 ? Math.floor((t - f.windowMs) / f.tileMs) * f.tileMs : t - f.windowMs;
  const inWindow = events.filter((e) => e.ts >= start && e.ts < t);
  if (f.aggregation === 'count') return inWindow.length;
  const withValue = inWindow.filter((e) => (f.column === 'amount' ? e.amount : e.merchant) !== null);
  const values = withValue.map((e) => (f.column === 'amount' ? e.amount : e.merchant)) as (
    | number
    | string
    | boolean
  )[];
  const nums = values as number[];
  const total = nums.reduce((a, b) => a + b, 0);
  switch (f.aggregation) {
    case 'sum':
      return total;
    case 'avg':
      return nums.length === 0 ? f.default : total / nums.length;
    case 'min':
      return nums.length === 0 ? f.default : Math.min(...nums);
    case 'max':
      return nums.length === 0 ? f.default : Math.max(...nums);
    case 'count_distinct':
    case 'approx_count_distinct':
      return new Set(values).size;
    case 'stddev':
    case 'variance': {
      if (nums.length < 2) return f.default;
      const mean = total / nums.length;
      const variance = nums.reduce((a, x) => a + (x - mean) ** 2, 0) / (nums.length - 1);
      return f.aggregation === 'stddev' ? Math.sqrt(variance) : variance;
    }
    case 'first':
    case 'last':
    case 'last_n': {
      const ordered = [...withValue].sort(
        (a, b) => a.ts - b.ts || a.partition - b.partition || a.offset - b.offset,
      );
      const vals = ordered.map((e) => (f.column === 'amount' ? e.amount : e.merchant));
      if (f.aggregation === 'last_n') return vals.slice(Math.max(0, vals.length - f.n));
      if (vals.length === 0) return f.default;
      return f.aggregation === 'first' ? vals[0] : vals[vals.length - 1];
    }
    default:
      throw new Error(`naive reference has no ${f.aggregation}`);
  }
}

/** Compares an engine value with the naive one: sums, averages and deviations to 1e-9 relative
 * (the naive loop rounds as it goes; the engine rounds once), everything else exactly. Exactly is
 * Object.is, element by element for a list (last_n): JSON would take NaN for null and -0 for 0. */
export function sameValue(aggregation: string, engine: unknown, naive: unknown): boolean {
  if (Array.isArray(engine) || Array.isArray(naive)) {
    return (
      Array.isArray(engine) &&
      Array.isArray(naive) &&
      engine.length === naive.length &&
      engine.every((x, i) => Object.is(x, naive[i]))
    );
  }
  // Also NaN against NaN and an infinity against itself, which the difference below refuses.
  if (Object.is(engine, naive)) return true;
  if (
    typeof engine === 'number' &&
    typeof naive === 'number' &&
    ['sum', 'avg', 'stddev', 'variance'].includes(aggregation)
  ) {
    return Math.abs(engine - naive) <= 1e-9 * Math.max(1, Math.abs(naive));
  }
  return false;
}

/** A declared feature of the fraud definitions, as of t, over one user's generated events. */
export function naiveFraudValue(
  events: readonly FraudEvent[],
  user: number,
  feature: FeatureDef,
  t: number,
): unknown {
  const own: NaiveEvent[] = events
    .filter((e) => e.user_id === user)
    .map((e) => ({
      ts: e.event_timestamp,
      partition: e.partition,
      offset: e.offset,
      amount: e.amount,
      merchant: e.merchant_id,
    }));
  return naiveValue(
    own,
    {
      aggregation: feature.aggregation,
      column: feature.column === 'amount' ? 'amount' : feature.column === 'merchant_id' ? 'merchant' : null,
      windowMs: feature.windowMs,
      tileMs: feature.mode === 'tiled' ? feature.tileMs : 0,
      default: feature.default as number | string | null,
      n: feature.n,
    },
    t,
  );
}
