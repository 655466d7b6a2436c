// What the ingestor and the flusher both do when their kafkajs consumer crashes: count it, log it,
// say so on /ready until the consumer is back at work (kafkajs restarts it by itself, and nothing
// is consumed meanwhile), and hand a crash kafkajs will not restart to onFatal, whose process then
// exits 1 for its supervisor instead of staying up consuming nothing.
import type { Consumer } from 'kafkajs';
import type { Logger } from 'pino';

/**
 * After a crash, how long the rejoined consumer must run without crashing again before /ready
 * says ready, when no batch has gone through meanwhile. Cleared at the rejoin itself, /ready
 * flapped while a partition crash-looped (rejoin, ready; the batch fails past kafkajs' retries,
 * ~5 s, crash, not ready; again): a readiness probe that sees one 200 counts the pod ready, so a
 * rolling update went on replacing healthy pods with crash-looping ones. 30 s is three of
 * Kubernetes' default probe periods, and several such cycles.
 */
export const CRASH_HOLD_MS = 30_000;

export interface CrashWatch {
  /** Why the consumer is not consuming now, or null. */
  trouble(): string | null;
}

export function watchConsumerCrashes(
  consumer: Pick<Consumer, 'on' | 'events'>,
  service: string,
  logger: Logger,
  handlers: { count: (error: Error) => void; onFatal?: (error: Error) => void },
  options: { holdMs?: number; now?: () => number } = {},
): CrashWatch {
  const holdMs = options.holdMs ?? CRASH_HOLD_MS;
  const now = options.now ?? Date.now;
  /** The last crash not yet recovered from (null: none), and whether kafkajs restarts the consumer. */
  let crash: { message: string; restart: boolean } | null = null;
  /** When the consumer rejoined its group after that crash (null: not yet). */
  let rejoinedAt: number | null = null;
  const recovered = () => {
    crash = null;
    rejoinedAt = null;
  };
  consumer.on(consumer.events.GROUP_JOIN, () => {
    if (crash !== null) rejoinedAt = now();
  });
  // A batch that went through after the rejoin: back at work, whatever the hold says. Empty
  // fetches are no such batch (kafkajs emits this only for a batch with records).
  consumer.on(consumer.events.END_BATCH_PROCESS, () => {
    if (rejoinedAt !== null) recovered();
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    handlers.count(payload.error);
    crash = { message: payload.error.message, restart: payload.restart };
    rejoinedAt = null;
    logger.warn({ err: payload.error.message, restart: payload.restart }, 'kafka consumer crashed');
    if (!payload.restart) handlers.onFatal?.(payload.error);
  });
  return {
    trouble() {
      if (crash === null) return null;
      const crashed = `kafka consumer crashed (${crash.message})`;
      if (rejoinedAt === null)
        return `${crashed}; ${crash.restart ? 'kafkajs is restarting it' : `kafkajs will not restart it: restart the ${service}`}`;
      const since = now() - rejoinedAt;
      if (since >= holdMs) {
        recovered();
        return null;
      }
      return `${crashed}; it rejoined its group ${Math.floor(since / 1000)} s ago: ready once it gets a batch through or runs ${holdMs / 1000} s without crashing`;
    },
  };
}
