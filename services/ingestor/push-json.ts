// The JSON of the `features.rows` and `features.updates` records, built as strings: a catch-up batch
// pushes two records per event, and JSON.stringify over a fresh object per record (plus
// Object.fromEntries for the feature map) was a visible share of the batch. The output is exactly
// what JSON.stringify gives for the same fields in the same order (push-json.test.ts holds it to that).
//
// Training rows are written compactly (docs/ingestor.md, "The rows format"): a header line with
// what a record's rows share (view, source topic and partition, definitions hash, feature names),
// then one array per row, `[entity, event time in epoch ms, offset, value...]`. Each row used to
// repeat all of that as an object with an ISO time: ~5x the bytes to build, checksum, send and
// store: the catch-up with rows ran 1.13-1.35x faster without it (docs/benchmarks.md, twenty-third pass).
import type { FeatureValue } from '../../shared/engine/index.ts';
import { ROWS_FORMAT } from '../../shared/offline/feature-columns.ts';
import type { FeatureUpdate, TrainingRow } from './apply-batch.ts';

export interface PushEncoder {
  /**
   * `{format, view, source_topic, partition, definitions_hash, features: [names]}`: the header the
   * rows of `view` from one source partition follow in a record (rows use the last header above them).
   */
  rowsHeader(sourceTopic: string, view: string, partition: number): string;
  /** `[entity, event time (epoch ms), offset, ...values in the header's feature order]`; a missing value is null. */
  row(row: TrainingRow): string;
  /** `{view, entity, as_of, state_version, features, definitions_hash}` */
  update(update: FeatureUpdate): string;
  /**
   * `{view, source_topic, partition, offset, no_row, definitions_hash}`: an offset without a row;
   * with `event_time_ms` (the event's time, epoch ms) when `ts` is given (late events), and
   * `rows_off: true` from an ingestor that sends no rows (its marks close no gaps: only the late
   * ones are sent, for point-in-time retrieval).
   */
  noRow(
    sourceTopic: string,
    view: string,
    partition: number,
    offset: number,
    reason: string,
    ts?: number,
    rowsOff?: boolean,
  ): string;
}

interface ViewParts {
  /** `{"view":"<name>","entity":` */
  head: string;
  /** `"<feature>":` per feature. */
  names: string[];
}

export function createPushEncoder(
  featureNames: ReadonlyMap<string, readonly string[]>,
  definitionsHash: string,
): PushEncoder {
  const views = new Map<string, ViewParts>();
  for (const [view, names] of featureNames)
    views.set(view, {
      head: `{"view":${JSON.stringify(view)},"entity":`,
      names: names.map((n) => `${JSON.stringify(n)}:`),
    });
  const tail = `,"definitions_hash":${JSON.stringify(definitionsHash)}}`;

  const parts = (view: string): ViewParts => {
    const p = views.get(view);
    if (!p) throw new Error(`no feature names for view ${view}`);
    return p;
  };

  return {
    rowsHeader(sourceTopic, view, partition) {
      parts(view); // the same error for a view without names
      return JSON.stringify({
        format: ROWS_FORMAT,
        view,
        source_topic: sourceTopic,
        partition,
        definitions_hash: definitionsHash,
        features: featureNames.get(view),
      });
    },
    row(r) {
      let out = `[${JSON.stringify(r.entity)},${jsonNumber(r.ts)},${jsonNumber(r.offset)}`;
      const values = r.values;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        out +=
          typeof v === 'number' ? `,${jsonNumber(v)}` : `,${v === undefined ? 'null' : JSON.stringify(v)}`;
      }
      return `${out}]`;
    },
    noRow(sourceTopic, view, partition, offset, reason, ts, rowsOff) {
      return JSON.stringify({
        view,
        source_topic: sourceTopic,
        partition,
        offset,
        no_row: reason,
        ...(ts === undefined ? {} : { event_time_ms: ts }),
        ...(rowsOff ? { rows_off: true } : {}),
        definitions_hash: definitionsHash,
      });
    },
    update(u) {
      const p = parts(u.view);
      return (
        `${p.head}${JSON.stringify(u.entity)},"as_of":"${new Date(u.asOf).toISOString()}"` +
        `,"state_version":${jsonNumber(u.version)},"features":${features(p.names, u.values)}${tail}`
      );
    },
  };
}

function features(names: readonly string[], values: readonly FeatureValue[]): string {
  let out = '{';
  for (let i = 0; i < names.length; i++) {
    const v = values[i];
    if (v === undefined) continue; // JSON.stringify leaves an undefined member out
    if (out.length > 1) out += ',';
    out += names[i]! + (typeof v === 'number' ? jsonNumber(v) : JSON.stringify(v));
  }
  return `${out}}`;
}

/** Leading zeros of the low six digits, by how many digits they have. */
const ZEROS = ['', '00000', '0000', '000', '00', '0', ''];

/**
 * `JSON.stringify(n)`. An integer past the small-integer range (an event time in epoch ms, ~1.7e12)
 * is written as two small integers, its digits above and below the millionth: V8 writes such a
 * double through its shortest-round-trip algorithm, ~4x slower, and every training row has one.
 */
export function jsonNumber(n: number): string {
  if (n > 0x3fffffff && n < 1e15 && n % 1 === 0) {
    const high = Math.floor(n / 1e6);
    const low = String(n - high * 1e6);
    return `${high}${ZEROS[low.length]}${low}`;
  }
  return Number.isFinite(n) ? String(n) : 'null';
}
