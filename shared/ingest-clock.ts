// What the ingestors judge an event's time against (TESSERA_INGEST_CLOCK, docs/ingestor.md,
// "Clocks"), and what they refuse by time alone: events too far ahead, and events older than a
// view's allowed lateness. The ingestor dead-letters them (apply-batch.ts, the engine's
// applyEvent); /push refuses such rows up front (services/server/push.ts).
import { formatDuration } from './definitions/duration.ts';

export const INGEST_CLOCKS = ['record', 'wall', 'event'] as const;
/**
 * `record`: an event is late when older than its view's lateness before its record's Kafka
 * timestamp (when it reached Kafka) or before the entity's newest event; `wall`: before the
 * ingestor's wall clock or the entity's newest event; `event`: before the entity's newest event only.
 */
export type IngestClock = (typeof INGEST_CLOCKS)[number];

/** Events whose time is more than this ahead of the clock are refused (reason `future`). */
export const MAX_FUTURE_MS = 5 * 60_000;

/**
 * When a record reached Kafka, from its timestamp (ms, as kafkajs gives it). A record without one
 * (-1: written in the old message format) is judged by `now`, the ingestor's wall clock.
 */
export function arrivalOf(timestamp: string, now: number): number {
  const t = Number(timestamp);
  return t >= 0 ? t : now;
}

/**
 * Why an ingestor refuses an event at `ts` that reached Kafka at `arrival` as `future`, or
 * undefined. On the record clock the event is held to its arrival, or to the wall clock when that is
 * earlier (a producer stamping records with the event's own time vouches for nothing).
 */
export function futureRefusal(
  clock: { mode: IngestClock; now: number },
  e: { ts: number; arrival: number },
): string | undefined {
  if (clock.mode === 'event') return undefined;
  const byArrival = clock.mode === 'record' && e.arrival < clock.now;
  if (e.ts <= (byArrival ? e.arrival : clock.now) + MAX_FUTURE_MS) return undefined;
  return `event time ${new Date(e.ts).toISOString()} is more than ${MAX_FUTURE_MS / 60_000} minutes ahead of ${byArrival ? `its record's Kafka timestamp (${new Date(e.arrival).toISOString()})` : 'the ingestor clock'}; check the producer's clock`;
}

/**
 * Why an ingestor would refuse an event at `ts` whose record is written at `now` for one of `views`
 * (all those its source feeds), or undefined when none would: on the wall clock, read at once; on
 * the record clock, the record's timestamp (/push sets it to `now`). Not on the event clock, where
 * lateness depends on each entity's newest event, which the ingestor alone knows. An event late for
 * one view only is still applied to the others by the ingestor; a push refuses it whole.
 */
export function clockRefusal(
  mode: IngestClock,
  ts: number,
  now: number,
  views: readonly { name: string; allowedLatenessMs: number }[],
): string | undefined {
  if (mode === 'event') return undefined;
  if (ts > now + MAX_FUTURE_MS)
    return `event time ${new Date(ts).toISOString()} is more than ${MAX_FUTURE_MS / 60_000} minutes ahead of the server's clock; check the sending host's clock`;
  const judge =
    mode === 'wall'
      ? "on the ingestors' wall clock (TESSERA_INGEST_CLOCK=wall)"
      : 'before the time this push stamps on its records, which the ingestors judge it by (TESSERA_INGEST_CLOCK=record)';
  for (const view of views)
    if (ts < now - view.allowedLatenessMs)
      return `event time ${new Date(ts).toISOString()} is older than view ${view.name}'s allowed_lateness (${formatDuration(view.allowedLatenessMs)}) ${judge}, so they would dead-letter it as late`;
  return undefined;
}
