// Builders shared by the engine tests: compiled plans from inline definitions, and events.
import { loadDefinitionsFile, parseDefinitions } from '../../shared/definitions/load.ts';
import { planView, type ViewPlan } from '../../shared/engine/plan.ts';
import type { EngineEvent } from '../../shared/engine/state.ts';

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const T0 = Date.UTC(2026, 0, 10);

export function fraudPlan(mode: 'exact' | 'tiled' = 'exact'): ViewPlan {
  return planView(loadDefinitionsFile('definitions/fraud.yaml', { mode }).views[0]!);
}

/**
 * A one-view plan over columns amount (double) and merchant (string, or another declared type),
 * with the given features.
 */
export function planOf(features: string, view = 'allowed_lateness: 1h', merchantType = 'string'): ViewPlan {
  const text = `
version: 1
project: t
entities: [{ name: user, join_key: user_id, type: int64 }]
sources:
  - name: tx
    topic: tx
    format: json
    key_field: user_id
    timestamp_field: ts
    schema: { user_id: int64, ts: timestamp, amount: double, merchant: ${merchantType} }
views:
  - name: v
    entity: user
    source: tx
    ${view}
    features:
${features
  .trim()
  .split('\n')
  .map((l) => `      ${l.trim()}`)
  .join('\n')}
`;
  return planView(parseDefinitions(text, 'inline.yaml').views[0]!);
}

let nextOffset = 0;
/** An event with values for `plan.columns` taken from `fields` (amount, merchant). */
export function ev(
  plan: ViewPlan,
  ts: number,
  fields: Record<string, number | string | boolean | null> = {},
  offset?: number,
  partition = 0,
): EngineEvent {
  return {
    ts,
    partition,
    offset: offset ?? nextOffset++,
    values: plan.columns.map((c) => fields[c] ?? null),
  };
}
