// Graceful shutdown shared by every service process: on the first SIGTERM or SIGINT, log why, run
// the service's own stop (finish the batch, flush, close), then exit 0; a stop that outlasts its
// grace period exits 1 so a supervisor is never left waiting.
import type { Logger } from 'pino';

export interface StopOptions {
  /** Logged when the signal arrives: what the stop is about to do. */
  stopping: string;
  graceMs: number;
  /** Logged when the grace period runs out, before exiting 1. */
  late: string;
  stop: () => Promise<void>;
}

export function stopOnSignals(logger: Logger, options: StopOptions): void {
  let stopping = false;
  const onSignal = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, options.stopping);
    const timer = setTimeout(() => {
      logger.error(options.late);
      process.exit(1);
    }, options.graceMs);
    try {
      await options.stop();
    } finally {
      clearTimeout(timer);
    }
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void onSignal('SIGTERM'));
  process.on('SIGINT', () => void onSignal('SIGINT'));
}
