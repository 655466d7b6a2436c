// State deltas: the events one save applied, appended after the stored state instead of rewriting
// it. A busy entity's state holds thousands of events; re-encoding all of them for every batch
// cost more than the rest of the ingest path together. A reader decodes the stored state and
// replays the deltas through applyEvent, the same code the writer ran, so the result is the
// writer's state exactly. Layout: docs/state-format.md, "Deltas".
import { ByteReader, ByteWriter, corrupt } from './bytes.ts';
import { Dictionary, readValue, UTF8_DECODER, writeValue } from './codec.ts';
import type { ViewPlan } from './plan.ts';
import { applyEvent, type EngineEvent, type EntityState } from './state.ts';

export const DELTA_TAG = 0xd1;

// Reused by every encodeDelta call (encoding is synchronous), like the state codec's writers.
const BODY = new ByteWriter();
const OUT = new ByteWriter();

/**
 * One delta record: `events` in the order the writer applied them, each applied (not a duplicate,
 * not late) with `now` (the ingestor's wall clock; undefined when it runs on event time).
 */
export function encodeDelta(plan: ViewPlan, events: readonly EngineEvent[], now?: number): Uint8Array {
  const dict = new Dictionary();
  const body = BODY;
  body.reset();
  body.varint(events.length);
  let prevTs = 0;
  let prevOffset = 0;
  const columns = plan.columns.length;
  for (const e of events) {
    body.zigzag(e.ts - prevTs);
    prevTs = e.ts;
    body.varint(e.partition);
    body.zigzag(e.offset - prevOffset);
    prevOffset = e.offset;
    for (let c = 0; c < columns; c++) writeValue(body, dict, e.values[c] ?? null);
  }
  const out = OUT;
  out.reset();
  out.u8(DELTA_TAG);
  out.u32(plan.fingerprint);
  out.u8(now === undefined ? 0 : 1);
  if (now !== undefined) out.zigzag(now);
  out.varint(dict.strings.length);
  for (const s of dict.strings) out.utf8(s);
  out.bytes(body.written());
  return out.finish();
}

/**
 * Replays concatenated delta records onto `state` (decoded from the bytes they were appended to).
 * Returns the number of records. Throws STATE_CORRUPT on bytes that are not delta records of
 * this plan; an event the state refuses (late, or a duplicate) means the deltas do not belong to
 * this state, and is corrupt too.
 */
export function applyDeltas(plan: ViewPlan, state: EntityState, bytes: Uint8Array): number {
  const r = new ByteReader(bytes);
  let records = 0;
  while (!r.done()) {
    const tag = r.u8();
    if (tag !== DELTA_TAG) throw corrupt(`delta record ${records} starts with byte ${tag}, not a delta`);
    const fingerprint = r.u32();
    if (fingerprint !== plan.fingerprint)
      throw corrupt(
        `delta record ${records} was written for another layout of view ${plan.view.name} (fingerprint ${fingerprint.toString(16)}, now ${plan.fingerprint.toString(16)})`,
      );
    const now = r.u8() === 1 ? r.zigzag() : undefined;
    const strings: string[] = [];
    const nStrings = r.varint();
    for (let i = 0; i < nStrings; i++) strings.push(UTF8_DECODER.decode(r.bytes(r.varint())));
    const n = r.varint();
    let ts = 0;
    let offset = 0;
    const columns = plan.columns.length;
    for (let i = 0; i < n; i++) {
      ts += r.zigzag();
      const partition = r.varint();
      offset += r.zigzag();
      const values = new Array(columns);
      for (let c = 0; c < columns; c++) values[c] = readValue(r, strings);
      let outcome: string;
      try {
        outcome = applyEvent(plan, state, { ts, partition, offset, values }, now).outcome;
      } catch (cause) {
        throw corrupt(`delta record ${records} holds an event the state refuses: ${String(cause)}`);
      }
      if (outcome !== 'applied')
        throw corrupt(`delta record ${records} repeats partition ${partition} offset ${offset}`);
    }
    records++;
  }
  return records;
}
