// Durations in definitions files ("90s", "5m", "1h", "7d", "2w") parsed to integer milliseconds.
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const DURATION_RE = /^(\d+)(ms|s|m|h|d|w)$/;

/** Parses "7d" to 604800000; returns undefined for anything else (the caller reports the field). */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_RE.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = UNIT_MS[match[2] as string] as number;
  const ms = value * unit;
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}

/** The shortest exact spelling of a duration, for messages and docs ("3600000" -> "1h"). */
export function formatDuration(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit] as number;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
