// The aggregation engine: one pure module (no I/O) that the ingestor, the server, the flusher,
// backfill and the verifier all call, so online and offline can never disagree.
export type { Acc, FeatureValue, StoredEvent, Value } from './acc.ts';
export { BeforeEventReader } from './before-reader.ts';
export { decodeState, encodeState, FORMAT_VERSION, stateHeader } from './codec.ts';
export { applyDeltas, encodeDelta } from './delta.ts';
export { type FeaturePlan, planView, type ViewPlan } from './plan.ts';
export {
  type ColumnData,
  type EventColumns,
  type FeatureColumn,
  featuresBeforeEach,
  featuresBeforeEachByEntity,
  featuresBeforeEachColumnar,
  featuresBeforeEachColumns,
  numericColumns,
  toEventColumns,
} from './sliding.ts';
export {
  type ApplyResult,
  advanceClock,
  applyEvent,
  type EngineEvent,
  type EntityState,
  emptyState,
  eventCount,
  lastOffset,
  newestEventBefore,
  newestEventTime,
  readFeatures,
  readFloor,
} from './state.ts';
export { windowStart } from './window.ts';

import type { Value } from './acc.ts';
import type { ViewPlan } from './plan.ts';
import type { EngineEvent } from './state.ts';

/** Builds an engine event from a decoded record (a plain object with the plan's columns). */
export function toEngineEvent(
  plan: ViewPlan,
  record: Readonly<Record<string, unknown>>,
  ts: number,
  partition: number,
  offset: number,
): EngineEvent {
  const values = plan.columns.map((column) => {
    const v = record[column];
    return typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean' ? (v as Value) : null;
  });
  return { ts, partition, offset, values };
}
