// What the ingestor and the flusher both do when their kafkajs consumer crashes: count it, log it,
// say so on /ready until the consumer has rejoined its group (kafkajs restarts it by itself, and
// nothing is consumed meanwhile), and hand a crash kafkajs will not restart to onFatal, whose
// process then exits 1 for its supervisor instead of staying up consuming nothing.
import type { Consumer } from 'kafkajs';
import type { Logger } from 'pino';

export interface CrashWatch {
  /** Why the consumer is not consuming now, or null. */
  trouble(): string | null;
}

export function watchConsumerCrashes(
  consumer: Pick<Consumer, 'on' | 'events'>,
  service: string,
  logger: Logger,
  handlers: { count: (error: Error) => void; onFatal?: (error: Error) => void },
): CrashWatch {
  let trouble: string | null = null;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    trouble = null;
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    handlers.count(payload.error);
    trouble = `kafka consumer crashed (${payload.error.message}); ${payload.restart ? 'kafkajs is restarting it' : `kafkajs will not restart it: restart the ${service}`}`;
    logger.warn({ err: payload.error.message, restart: payload.restart }, 'kafka consumer crashed');
    if (!payload.restart) handlers.onFatal?.(payload.error);
  });
  return { trouble: () => trouble };
}
