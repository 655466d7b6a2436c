// Window arithmetic, in one place: a feature read as of t covers event times in
// [windowStart(t), t). Exact mode: t - W. Tiled mode: t - W rounded down to the feature's tile
// (epoch-aligned UTC), so the window holds between W and W + tile of history, like Chronon's
// sawtooth windows. Online reads, tiles, the sliding offline evaluator and the docs all use this.

/** Rounds x down to a multiple of `step` (toward minus infinity, so negative times work too). */
export function floorTo(x: number, step: number): number {
  return Math.floor(x / step) * step;
}

export interface WindowSpec {
  windowMs: number;
  /** 0 in exact mode. */
  tileMs: number;
}

export function windowStart(t: number, spec: WindowSpec): number {
  return spec.tileMs > 0 ? floorTo(t - spec.windowMs, spec.tileMs) : t - spec.windowMs;
}

/** True when an event at `ts` counts in the window read as of `t`. */
export function inWindow(ts: number, t: number, spec: WindowSpec): boolean {
  return ts >= windowStart(t, spec) && ts < t;
}

/** Index of the first element of the ascending `times` that is >= `bound` (times.length if none). */
export function lowerBound(times: ArrayLike<number>, bound: number, from = 0, to = times.length): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((times[mid] as number) < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
