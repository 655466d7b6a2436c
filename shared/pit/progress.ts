// A progress bar on stderr for long offline runs: done / total, rate and ETA. Redrawn in place on a
// terminal; one line every few seconds otherwise (logs, CI), so it never floods a file.
export interface Progress {
  /** Sets how much is done (absolute). */
  update(done: number): void;
  /** Prints the final line. */
  finish(): void;
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Off: nothing is printed. */
  enabled?: boolean;
  unit?: string;
}

export function createProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const unit = options.unit ?? 'rows';
  if (options.enabled === false) return { update() {}, finish() {} };
  const tty = Boolean(stream.isTTY);
  const started = performance.now();
  let last = 0;
  let done = 0;
  const render = (final: boolean): string => {
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const share = total > 0 ? Math.min(1, done / total) : 1;
    const width = 24;
    const filled = Math.round(share * width);
    const eta = rate > 0 && total > done ? (total - done) / rate : 0;
    return (
      `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${fmt(done)}/${fmt(total)} ${unit} ` +
      `(${(share * 100).toFixed(1)}%) ${fmt(Math.round(rate))} ${unit}/s ` +
      (final ? `in ${seconds.toFixed(1)}s` : `ETA ${eta.toFixed(0)}s`)
    );
  };
  return {
    update(value: number) {
      done = value;
      const now = performance.now();
      if (now - last < (tty ? 200 : 5000)) return;
      last = now;
      stream.write(tty ? `\r${render(false)}\u001b[K` : `${render(false)}\n`);
    },
    finish() {
      stream.write(tty ? `\r${render(true)}\u001b[K\n` : `${render(true)}\n`);
    },
  };
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
