// Rate control for the producer: a token bucket refilled at `ratePerSec`, holding at most one
// second's worth (or one batch) so a pause never turns into a burst beyond that.
import { setTimeout as sleep } from 'node:timers/promises';

export interface TokenBucket {
  /** Waits until `n` tokens are available and takes them; resolves early when `signal` aborts. */
  take(n: number, signal?: AbortSignal): Promise<void>;
}

/** `ratePerSec` 0 = unlimited. */
export function createTokenBucket(
  ratePerSec: number,
  burst: number,
  now: () => number = performance.now.bind(performance),
): TokenBucket {
  if (ratePerSec <= 0) return { take: async () => {} };
  const capacity = Math.max(burst, 1);
  let tokens = capacity;
  let last = now();
  const refill = () => {
    const t = now();
    tokens = Math.min(capacity, tokens + ((t - last) * ratePerSec) / 1000);
    last = t;
  };
  return {
    async take(n, signal) {
      refill();
      while (tokens < n) {
        const waitMs = Math.max(1, ((n - tokens) * 1000) / ratePerSec);
        try {
          await sleep(waitMs, undefined, signal ? { signal } : {});
        } catch {
          return; // aborted: the caller checks the signal
        }
        refill();
      }
      tokens -= n;
    },
  };
}
