// A view compiled for the engine: column positions, one accumulator slot per feature, the tile
// sizes and the retention horizons. Built once per definitions version; pure data.
import {
  type Aggregation,
  type FeatureDef,
  NUMERIC_AGGREGATIONS,
  type ViewDef,
} from '../definitions/schema.ts';
import type { WindowSpec } from './window.ts';

/** The intermediate-result kind an aggregation needs (what a tile stores). */
export type AccKind =
  | 'count'
  | 'sum'
  | 'moments'
  | 'min'
  | 'max'
  | 'distinct'
  | 'hll'
  | 'first'
  | 'last'
  | 'last_n';

const ACC_OF: Record<Aggregation, AccKind> = {
  count: 'count',
  sum: 'sum',
  avg: 'sum',
  min: 'min',
  max: 'max',
  count_distinct: 'distinct',
  approx_count_distinct: 'hll',
  first: 'first',
  last: 'last',
  stddev: 'moments',
  variance: 'moments',
  last_n: 'last_n',
};

/**
 * Whether the feature aggregates its column as numbers (sum, avg, min, max, stddev, variance: the
 * definitions' NUMERIC_AGGREGATIONS, the same set the loader records per source).
 */
export function readsNumbers(f: FeaturePlan): boolean {
  return NUMERIC_AGGREGATIONS.has(f.def.aggregation);
}

export interface FeaturePlan extends WindowSpec {
  def: FeatureDef;
  index: number;
  acc: AccKind;
  /** Position of the feature's column in an event's values; -1 for count. */
  column: number;
  /** Position of the feature within its tile group (tiled features only; -1 otherwise). */
  slot: number;
  n: number;
  precision: number;
}

export interface TileGroupPlan {
  tileMs: number;
  /** Features read from tiles of this size. */
  features: FeaturePlan[];
  /** Tiles older than `horizon - keepMs` can never be read again. */
  keepMs: number;
}

export interface ViewPlan {
  view: ViewDef;
  /** Columns an event must carry, in the order of EngineEvent.values. */
  columns: string[];
  features: FeaturePlan[];
  exactFeatures: FeaturePlan[];
  tileGroups: TileGroupPlan[];
  /** Raw events are kept back to clock - lateness - this, for exact features. */
  exactKeepMs: number;
  latenessMs: number;
  maxEvents: number;
  /**
   * Tiled features fold an entity's oldest raw events into tiles once it holds more than this many
   * (docs/state-format.md): FOLD_AT, or maxEvents when lower. It changes no value, only where
   * events are held: below it an entity keeps raw events, which cost less than a tile of every
   * size each.
   */
  foldAt: number;
  /**
   * No raw event is pruned before the clock passes its time plus this: lateness plus the longest
   * horizon of exact features and tile sizes (a lower bound of state.ts rawPruneAt).
   */
  rawLifeMs: number;
  /** first/last/last_n need the (ts, partition, offset) order of ties to be stored. */
  needsOrder: boolean;
  /** Changes whenever the state layout changes; stored in serialized state. */
  fingerprint: number;
}

/** Raw events an entity holds before tiled features fold the oldest ones (ViewPlan.foldAt). */
export const FOLD_AT = 256;

export function planView(view: ViewDef): ViewPlan {
  const columns: string[] = [];
  const features = view.features.map((def, index): FeaturePlan => {
    let column = -1;
    if (def.column) {
      column = columns.indexOf(def.column);
      if (column < 0) column = columns.push(def.column) - 1;
    }
    return {
      def,
      index,
      acc: ACC_OF[def.aggregation],
      column,
      slot: -1,
      n: def.n,
      precision: def.precision,
      windowMs: def.windowMs,
      tileMs: def.mode === 'tiled' ? def.tileMs : 0,
    };
  });
  const exactFeatures = features.filter((f) => f.tileMs === 0);
  const tileSizes = [...new Set(features.filter((f) => f.tileMs > 0).map((f) => f.tileMs))].sort(
    (a, b) => a - b,
  );
  const tileGroups = tileSizes.map((tileMs): TileGroupPlan => {
    const members = features.filter((f) => f.tileMs === tileMs);
    members.forEach((f, slot) => {
      f.slot = slot;
    });
    return { tileMs, features: members, keepMs: Math.max(...members.map((f) => f.windowMs)) + tileMs };
  });
  const exactKeepMs = Math.max(0, ...exactFeatures.map((f) => f.windowMs));
  const layout = JSON.stringify([
    columns,
    features.map((f) => [f.acc, f.column, f.tileMs, f.n, f.precision]),
  ]);
  return {
    view,
    columns,
    features,
    exactFeatures,
    tileGroups,
    exactKeepMs,
    latenessMs: view.allowedLatenessMs,
    maxEvents: view.maxEventsPerEntity,
    // Folding what can fold before the cap is reached keeps the cap from dropping those events.
    foldAt: Math.min(FOLD_AT, view.maxEventsPerEntity),
    // exactKeepMs is 0 without exact features.
    rawLifeMs: view.allowedLatenessMs + Math.max(exactKeepMs, ...tileGroups.map((g) => g.keepMs)),
    needsOrder: features.some((f) => f.acc === 'first' || f.acc === 'last' || f.acc === 'last_n'),
    fingerprint: fnv32(layout),
  };
}

function fnv32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
