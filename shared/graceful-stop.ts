// Graceful shutdown shared by every service process: on the first SIGTERM or SIGINT, log why, run
// the service's own stop (finish the batch, flush, close), then exit 0; a stop that outlasts its
// grace period, or fails, exits 1 so a supervisor is never left waiting. The returned function
// runs the same stop for a fatal failure, and exits 1.
import type { Logger } from 'pino';

export interface StopOptions {
  /** Logged when the signal arrives: what the stop is about to do. */
  stopping: string;
  graceMs: number;
  /** Logged when the grace period runs out, before exiting 1. */
  late: string;
  stop: () => Promise<void>;
}

export function stopOnSignals(logger: Logger, options: StopOptions): (reason: string) => void {
  let stopping = false;
  /** 1 once any failure asked for the stop, even while a signal's stop was already running. */
  let code = 0;
  const stop = async (context: Record<string, unknown>, exitCode: number) => {
    code = Math.max(code, exitCode);
    if (stopping) {
      if (exitCode !== 0) logger.error(context, 'a fatal failure during the stop: the process will exit 1');
      return;
    }
    stopping = true;
    logger.info(context, options.stopping);
    const timer = setTimeout(() => {
      logger.error(options.late);
      process.exit(1);
    }, options.graceMs);
    try {
      await options.stop();
    } catch (error) {
      // It was an unhandled rejection: a raw stack, no log line, no "stopped".
      code = 1;
      logger.error({ err: error }, 'the stop failed: the process exits 1');
    } finally {
      clearTimeout(timer);
    }
    logger.info({ exitCode: code }, 'stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop({ signal: 'SIGTERM' }, 0));
  process.on('SIGINT', () => void stop({ signal: 'SIGINT' }, 0));
  // The same stop from inside, for a failure the process cannot recover from: exit 1 so that a
  // supervisor restarts it.
  return (reason) => void stop({ reason }, 1);
}
