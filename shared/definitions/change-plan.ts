// What a change of definitions does, view by view (`cli.ts plan`, docs/definitions.md): whether
// the states in Redis stay readable (the engine's layout fingerprint), hold enough history for
// longer windows, and whether the offline tables' columns change. Pure: no I/O.
import { planView, type ViewPlan } from '../engine/index.ts';
import { featureTableColumns } from '../offline/feature-columns.ts';
import { formatDuration } from './duration.ts';
import type { Definitions, FeatureDef, ViewDef } from './schema.ts';

/**
 * - `rebuild`: the state layout changed; the ingestor and the server refuse every state written
 *   before (STATE_CORRUPT) until the view's states are deleted and its source replayed;
 * - `source`: states stay readable, but hold what the old source gave: another topic's offsets (the
 *   new topic's records up to them taken for duplicates), event times or entities read from
 *   another field, values of a column read as another type; rebuilt the same way as `history`;
 * - `history`: states stay readable, but a window (or the allowed lateness) grew past what they
 *   hold: its values undercount until the longer span has passed since the change, unless the
 *   view is rebuilt the same way;
 * - `read-side`: only what reads or expires states changed (defaults, max_age, ttl, ...);
 * - `added`: a new view; it starts empty (fill it with the same replay);
 * - `removed`: its states are no longer read (they expire after their ttl);
 * - `unchanged`.
 */
export type ViewChangeKind =
  | 'rebuild'
  | 'source'
  | 'history'
  | 'read-side'
  | 'added'
  | 'removed'
  | 'unchanged';

export interface ViewChange {
  view: string;
  kind: ViewChangeKind;
  /** What differs, one line each ("feature x: window 1h -> 2h"). */
  changes: string[];
  fingerprint: { before: number | null; after: number | null };
  /** features.parquet / training row / pushed vector columns as `name type`, before and after. */
  columns: { before: string[]; after: string[]; changed: boolean };
  /**
   * For `rebuild`, `source`, `history` and `added`: how far back the source must be replayed (the engine's
   * longest horizon: longest window, plus its tile, plus the allowed lateness).
   */
  replayMs: number | null;
}

export interface ChangePlan {
  hash: { before: string; after: string };
  views: ViewChange[];
  featureServices: { added: string[]; removed: string[]; changed: string[] };
  /** Some view's states are refused or short of history: a rebuild is needed. */
  rebuildNeeded: boolean;
}

const show = (v: unknown) => (typeof v === 'string' ? v : String(JSON.stringify(v)));

function columns(view: ViewDef | undefined): string[] {
  return view ? featureTableColumns(view).map((c) => `${c.name} ${c.type}`) : [];
}

function featureChanges(before: FeatureDef, after: FeatureDef): string[] {
  const out: string[] = [];
  const fields: [string, (f: FeatureDef) => unknown][] = [
    ['aggregation', (f) => f.aggregation],
    ['column', (f) => f.column ?? 'none'],
    ['window', (f) => formatDuration(f.windowMs)],
    ['mode', (f) => f.mode],
    ['tile', (f) => (f.mode === 'tiled' ? formatDuration(f.tileMs) : 'none')],
    ['default', (f) => JSON.stringify(f.default)],
    ['n', (f) => f.n],
    ['precision', (f) => f.precision],
  ];
  for (const [name, get] of fields)
    if (show(get(before)) !== show(get(after)))
      out.push(`feature ${after.name}: ${name} ${show(get(before))} -> ${show(get(after))}`);
  return out;
}

function viewChanges(before: ViewDef, after: ViewDef): string[] {
  const out: string[] = [];
  const fields: [string, (v: ViewDef) => unknown][] = [
    ['entity', (v) => `${v.entity.name} (${v.entity.joinKey}: ${v.entity.keyType})`],
    [
      'source',
      ({ source: s }) =>
        `${s.name} (topic ${s.topic}, ${s.format}${s.avroSchema === undefined ? '' : ` ${s.avroSchema}`}, key ${s.keyField}, time ${s.timestampField} ${s.timestampFormat})`,
    ],
    [
      'source columns',
      (v) =>
        Object.entries(v.source.schema)
          .map(([c, t]) => `${c} ${t}`)
          .join(', '),
    ],
    ['allowed_lateness', (v) => formatDuration(v.allowedLatenessMs)],
    ['ttl', (v) => formatDuration(v.ttlMs)],
    ['max_events_per_entity', (v) => v.maxEventsPerEntity],
    ['max_age', (v) => (v.maxAgeMs === null ? 'none' : formatDuration(v.maxAgeMs))],
  ];
  for (const [name, get] of fields)
    if (show(get(before)) !== show(get(after)))
      out.push(`${name}: ${show(get(before))} -> ${show(get(after))}`);
  const old = new Map(before.features.map((f) => [f.name, f]));
  const names = after.features.map((f) => f.name);
  for (const f of before.features) if (!names.includes(f.name)) out.push(`feature ${f.name} removed`);
  for (const f of after.features) {
    const was = old.get(f.name);
    out.push(...(was ? featureChanges(was, f) : [`feature ${f.name} added`]));
  }
  const kept = before.features.map((f) => f.name).filter((n) => names.includes(n));
  if (kept.join() !== names.filter((n) => old.has(n)).join()) out.push('features reordered');
  return out;
}

/**
 * Source changes after which the states, though readable, hold what the old source gave. Other
 * source changes (format, schema file, timestamp format, columns no feature reads) change only how
 * new records are decoded.
 */
function sourceChanges(before: ViewDef, after: ViewDef, plan: ViewPlan): string[] {
  const out: string[] = [];
  const b = before.source;
  const a = after.source;
  if (b.topic !== a.topic)
    out.push(
      `the states hold the offsets of topic ${b.topic}: records of ${a.topic} at or below them would be taken for duplicates`,
    );
  if (b.timestampField !== a.timestampField)
    out.push(`the states hold event times read from ${b.timestampField}, not ${a.timestampField}`);
  if (b.keyField !== a.keyField)
    out.push(`the states hold events grouped by ${b.keyField}, not ${a.keyField}`);
  for (const column of plan.columns)
    if (b.schema[column] !== undefined && b.schema[column] !== a.schema[column])
      out.push(
        `the states hold the values of column ${column} as ${b.schema[column]}, not ${a.schema[column]}`,
      );
  return out;
}

/**
 * Windows that grew past what a state of the old plan holds: the engine keeps raw events (exact
 * features) and tiles (per tile size) only as far back as the longest window that read them, so a
 * longer window reads less than it should. (Same layout means same modes and tile sizes.) Those
 * spans start at the clock less the allowed lateness: a longer lateness admits reads (the
 * training rows of late events) older than the states reach, until it has passed.
 */
function grownWindows(before: ViewPlan, after: ViewPlan): string[] {
  const out: string[] = [];
  for (const f of after.features) {
    const group = before.tileGroups.find((g) => g.tileMs === f.tileMs);
    const held = f.tileMs === 0 ? before.exactKeepMs : group ? group.keepMs - group.tileMs : 0;
    if (f.windowMs > held)
      out.push(
        `feature ${f.def.name}: window ${formatDuration(f.windowMs)}, the states hold ${formatDuration(held)} of history`,
      );
  }
  if (after.latenessMs > before.latenessMs)
    out.push(
      `allowed_lateness grew: the rows of events up to ${formatDuration(after.latenessMs)} late read windows reaching past the ${formatDuration(before.latenessMs)} of lateness the states hold, until ${formatDuration(after.latenessMs)} has passed`,
    );
  return out;
}

/** Kinds whose states must be filled by a replay of the source (ViewChange.replayMs). */
const REPLAYED: ReadonlySet<ViewChangeKind> = new Set(['rebuild', 'source', 'history', 'added']);

export function planChange(before: Definitions, after: Definitions): ChangePlan {
  const names = [...new Set([...after.views.map((v) => v.name), ...before.views.map((v) => v.name)])];
  const views = names.map((name): ViewChange => {
    const b = before.views.find((v) => v.name === name);
    const a = after.views.find((v) => v.name === name);
    const pb = b ? planView(b) : null;
    const pa = a ? planView(a) : null;
    const cols = { before: columns(b), after: columns(a), changed: false };
    cols.changed = cols.before.join() !== cols.after.join();
    const change: ViewChange = {
      view: name,
      kind: 'unchanged',
      changes: [],
      fingerprint: { before: pb?.fingerprint ?? null, after: pa?.fingerprint ?? null },
      columns: cols,
      replayMs: pa ? pa.rawLifeMs : null,
    };
    if (!b || !pb) return { ...change, kind: 'added' };
    if (!a || !pa) return { ...change, kind: 'removed', replayMs: null };
    change.changes = viewChanges(b, a);
    const source = sourceChanges(b, a, pa);
    const grown = grownWindows(pb, pa);
    if (pb.fingerprint !== pa.fingerprint) change.kind = 'rebuild';
    else if (source.length > 0) {
      change.kind = 'source';
      change.changes.push(...source, ...grown);
    } else if (grown.length > 0) {
      change.kind = 'history';
      change.changes.push(...grown);
    } else change.kind = change.changes.length > 0 ? 'read-side' : 'unchanged';
    if (!REPLAYED.has(change.kind)) change.replayMs = null;
    return change;
  });
  const fsBefore = before.featureServices;
  const fsAfter = after.featureServices;
  return {
    hash: { before: before.hash, after: after.hash },
    views,
    featureServices: {
      added: [...fsAfter.keys()].filter((n) => !fsBefore.has(n)),
      removed: [...fsBefore.keys()].filter((n) => !fsAfter.has(n)),
      changed: [...fsAfter.keys()].filter(
        (n) => fsBefore.has(n) && fsBefore.get(n)!.join() !== fsAfter.get(n)!.join(),
      ),
    },
    rebuildNeeded: views.some((v) => v.kind !== 'added' && REPLAYED.has(v.kind)),
  };
}

/** A duration as days, hours, minutes and seconds: `30d 1h` (formatDuration writes `721h`). */
export function spelledDuration(ms: number): string {
  const parts: string[] = [];
  let rest = Math.ceil(ms / 1000);
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) parts.push(`${Math.floor(rest / size)}${unit}`);
    rest %= size;
  }
  return parts.length > 0 ? parts.join(' ') : '0s';
}

/** An ISO-8601 duration (`P30DT2H`), as kafka-consumer-groups.sh `--by-duration` takes it. */
export function isoDuration(ms: number): string {
  const s = Math.ceil(ms / 1000);
  const days = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const time = `${h ? `${h}H` : ''}${m ? `${m}M` : ''}${sec ? `${sec}S` : ''}`;
  return `P${days}D${time ? `T${time}` : ''}`;
}
