// The JSON of the `features.rows` and `features.updates` records, built as strings: a catch-up batch
// pushes two records per event, and JSON.stringify over a fresh object per record (plus
// Object.fromEntries for the feature map) was a visible share of the batch. The output is exactly
// what JSON.stringify gives for the same fields in the same order (push-json.test.ts holds it to that).
import type { FeatureValue } from '../../shared/engine/index.ts';
import type { FeatureUpdate, TrainingRow } from './apply-batch.ts';

export interface PushEncoder {
  /** `{view, entity, event_timestamp, source_topic, partition, offset, features, definitions_hash}` */
  row(sourceTopic: string, row: TrainingRow): string;
  /** `{view, entity, as_of, state_version, features, definitions_hash}` */
  update(update: FeatureUpdate): string;
  /** `{view, source_topic, partition, offset, no_row, definitions_hash}`: an offset without a row. */
  noRow(sourceTopic: string, view: string, partition: number, offset: number, reason: string): string;
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
  const topics = new Map<string, string>();

  const parts = (view: string): ViewParts => {
    const p = views.get(view);
    if (!p) throw new Error(`no feature names for view ${view}`);
    return p;
  };

  return {
    row(sourceTopic, r) {
      const p = parts(r.view);
      let topic = topics.get(sourceTopic);
      if (topic === undefined) {
        topic = JSON.stringify(sourceTopic);
        topics.set(sourceTopic, topic);
      }
      return (
        `${p.head}${JSON.stringify(r.entity)},"event_timestamp":"${new Date(r.ts).toISOString()}"` +
        `,"source_topic":${topic},"partition":${jsonNumber(r.partition)},"offset":${jsonNumber(r.offset)}` +
        `,"features":${features(p.names, r.values)}${tail}`
      );
    },
    noRow(sourceTopic, view, partition, offset, reason) {
      return JSON.stringify({
        view,
        source_topic: sourceTopic,
        partition,
        offset,
        no_row: reason,
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

function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}
