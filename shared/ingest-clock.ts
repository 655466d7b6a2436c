// What an ingestor on the wall clock (TESSERA_INGEST_CLOCK=wall) refuses by time alone: events too
// far ahead of it, and events older than a view's allowed lateness. The ingestor dead-letters them
// (apply-batch.ts, the engine's applyEvent); /push refuses such rows up front (services/server/push.ts).
import { formatDuration } from './definitions/duration.ts';

/** Events whose time is more than this ahead of the wall clock are refused (reason `future`). */
export const MAX_FUTURE_MS = 5 * 60_000;

/**
 * Why an ingestor whose wall clock reads `now` would refuse an event at `ts` for one of `views`
 * (all those its source feeds), or undefined when none would. An event late for one view only is
 * still applied to the others by the ingestor; a push refuses it whole.
 */
export function wallClockRefusal(
  ts: number,
  now: number,
  views: readonly { name: string; allowedLatenessMs: number }[],
): string | undefined {
  if (ts > now + MAX_FUTURE_MS)
    return `event time ${new Date(ts).toISOString()} is more than ${MAX_FUTURE_MS / 60_000} minutes ahead of the server's clock; check the sending host's clock`;
  for (const view of views)
    if (ts < now - view.allowedLatenessMs)
      return `event time ${new Date(ts).toISOString()} is older than view ${view.name}'s allowed_lateness (${formatDuration(view.allowedLatenessMs)}) on the ingestors' wall clock (TESSERA_INGEST_CLOCK=wall), so they would dead-letter it as late`;
  return undefined;
}
