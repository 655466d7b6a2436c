// The ingestor's offset commits: each partition's processed offset at most once per interval, a
// timer for what an idle partition left pending, everything on stop. A commit that fails (the
// coordinator moving, a broker restart) keeps its offsets pending for the next try.
import type { Consumer } from 'kafkajs';
import type { Logger } from 'pino';

/** How soon a failed commit is tried again when commits are not periodic (interval 0). */
const RETRY_MS = 1000;

export interface CommitOffset {
  topic: string;
  partition: number;
  offset: string;
}

export interface Committer {
  /** These partitions' records up to `offset` are processed: commits those whose interval has passed. */
  done(processed: readonly CommitOffset[]): Promise<void>;
  /** Commits every processed offset not committed yet. */
  flush(): Promise<void>;
  /** Forgets uncommitted offsets (after a rebalance they may belong to another member now). */
  forget(): void;
  stop(): void;
}

/**
 * Commits each partition's processed offset at most once per interval (0: every batch), and a
 * timer commits what an idle partition left pending. kafkajs fetches from the resolved offset, so
 * the commit only matters after a crash or a rebalance, when the records after it come back: the
 * engine's per-partition offsets make them no-ops.
 */
export function createCommitter(
  consumer: Pick<Consumer, 'commitOffsets'>,
  intervalMs: number,
  logger: Pick<Logger, 'warn'>,
): Committer {
  /** Per partition, the next offset to commit (the one after the last processed record). */
  const pending = new Map<string, CommitOffset>();
  const lastCommit = new Map<string, number>();
  /** Per partition, the highest offset handed to a commit (sent, in flight or done). */
  const highest = new Map<string, bigint>();
  /** Bumped by forget(): a commit that fails after a rebalance must not bring back its offsets. */
  let generation = 0;
  const keyOf = (o: CommitOffset) => `${o.topic}\0${o.partition}`;
  const commit = async (offsets: CommitOffset[]) => {
    const started = generation;
    for (const o of offsets) {
      const at = BigInt(o.offset);
      if (at > (highest.get(keyOf(o)) ?? -1n)) highest.set(keyOf(o), at);
    }
    try {
      await consumer.commitOffsets(offsets);
    } catch (error) {
      // Pending again unless a later offset of the partition is waiting or was sent since (a late
      // retry of an older one would move the group's offset back).
      if (generation === started)
        for (const o of offsets)
          if (!pending.has(keyOf(o)) && BigInt(o.offset) >= (highest.get(keyOf(o)) ?? -1n))
            pending.set(keyOf(o), o);
      throw error;
    }
  };
  const flush = async () => {
    const offsets = [...pending.values()];
    pending.clear();
    const now = Date.now();
    for (const o of offsets) lastCommit.set(keyOf(o), now);
    if (offsets.length > 0) await commit(offsets);
  };
  // With an interval of 0 nothing waits for the timer, except a commit that failed: it is retried
  // every second, or an idle partition would keep it pending (and lagging) until its next batch.
  const timer = setInterval(
    () => {
      if (pending.size === 0) return;
      flush().catch((error) =>
        logger.warn(
          { err: error },
          'periodic offset commit failed; its offsets are committed again next time',
        ),
      );
    },
    intervalMs > 0 ? intervalMs : RETRY_MS,
  );
  timer.unref();
  return {
    async done(processed) {
      const now = Date.now();
      const due: CommitOffset[] = [];
      for (const { topic, partition, offset } of processed) {
        const next = { topic, partition, offset: (BigInt(offset) + 1n).toString() };
        const key = keyOf(next);
        if (now - (lastCommit.get(key) ?? 0) < intervalMs) {
          pending.set(key, next);
        } else {
          pending.delete(key);
          lastCommit.set(key, now);
          due.push(next);
        }
      }
      if (due.length > 0) await commit(due);
    },
    flush,
    forget: () => {
      generation++;
      pending.clear();
      highest.clear();
    },
    stop: () => clearInterval(timer),
  };
}
