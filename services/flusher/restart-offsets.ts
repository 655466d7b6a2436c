// Where the ingestor group restarts after a Redis restore (services/flusher/restore.ts), from an
// entity snapshot's committed offsets and the source topic as it is now. Pure.
import { TesseraError } from '../../shared/errors.ts';

export interface RestartOffset {
  partition: number;
  offset: string;
  /** Why not the snapshot's own offset, if not. */
  note?: string;
}

/**
 * Per partition of the topic as it is now, where the ingestors restart: the snapshot's offset; the
 * earliest record for a partition the group had not committed on (-1) or that the topic gained
 * since; refused (unless `allowGap`, then the earliest record) where retention has deleted
 * records after the snapshot's offset, which the restored states would never see.
 */
export function restartOffsets(
  snapshot: Record<string, string>,
  topic: readonly { partition: number; low: string }[],
  allowGap: boolean,
): RestartOffset[] {
  const gaps: string[] = [];
  const out = topic
    .map(({ partition, low }): RestartOffset => {
      const offset = snapshot[String(partition)];
      if (offset === undefined)
        return { partition, offset: low, note: 'not in the snapshot: from its earliest record' };
      if (offset === '-1')
        return { partition, offset: low, note: 'no commit at the snapshot: from its earliest record' };
      if (BigInt(offset) < BigInt(low)) {
        gaps.push(`partition ${partition}: the snapshot's offset ${offset}, the earliest record left ${low}`);
        return {
          partition,
          offset: low,
          note: `records ${offset}..${BigInt(low) - 1n} were deleted by retention and are skipped`,
        };
      }
      return { partition, offset };
    })
    .sort((a, b) => a.partition - b.partition);
  if (gaps.length > 0 && !allowGap)
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `the topic no longer holds every record after this snapshot (${gaps.join('; ')}): restored states would miss them. Restore a newer snapshot (--version), or accept the loss with --allow-gap`,
    );
  return out;
}
