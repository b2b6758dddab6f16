/** Plain-text tables for the terminal. */
export function table(header: string[], rows: string[][], leftColumns: readonly number[] = [0]): string {
  const widths = header.map((h, j) => Math.max(h.length, ...rows.map((r) => (r[j] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, j) => (leftColumns.includes(j) ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** A number for humans: 4 significant decimals, or a dash when undefined. */
export function num(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  if (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0)) return v.toExponential(2);
  return v.toFixed(digits);
}

/**
 * A progress bar on stderr, drawn only on a TTY (a pipe or a log file gets nothing), at most
 * ten times a second so it never slows training.
 */
export function progressBar(stream: NodeJS.WriteStream): { update(fraction: number, label: string): void; done(): void } {
  if (!stream.isTTY) return { update() {}, done() {} };
  let last = 0;
  return {
    update(fraction, label) {
      const now = Date.now();
      if (now - last < 100 && fraction < 1) return;
      last = now;
      const width = 24;
      const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}% ${label}`.slice(0, (stream.columns || 80) - 1).padEnd((stream.columns || 80) - 1));
    },
    done() {
      stream.write('\r' + ' '.repeat((stream.columns || 80) - 1) + '\r');
    },
  };
}

/** Warnings on stderr, one line each. */
export function printWarnings(io: { stderr: NodeJS.WritableStream }, warnings: { message: string }[]): void {
  for (const w of warnings) io.stderr.write(`warning: ${w.message}\n`);
}
