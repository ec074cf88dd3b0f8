// Metrics as JSON lines: one object a line, appended with one write each, so
// a run killed at any moment keeps every line written before (a torn last
// line is the worst case, and readers skip it).
import { closeSync, mkdirSync, openSync, readFileSync, existsSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export type MetricsRecord = Record<string, unknown>;

export class MetricsLog {
  private fd: number | undefined;
  /** Called with every record written (the TensorBoard writer follows the log this way). */
  readonly listeners: ((record: MetricsRecord) => void)[] = [];

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a');
  }

  /** Appends one line (written to the OS at once; no buffering in the process). */
  write(record: MetricsRecord): void {
    if (this.fd === undefined) throw new Error(`metrics log ${this.path} is closed`);
    writeSync(this.fd, `${JSON.stringify(record)}\n`);
    for (const l of this.listeners) l(record);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Reads a metrics file, skipping a torn last line left by a killed run. */
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricsRecord[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch (e) {
      if (i < lines.length - 1 && lines.slice(i + 1).some((l) => l.trim() !== '')) {
        throw new Error(`${path}: line ${i + 1} is not JSON: ${(e as Error).message}`);
      }
    }
  });
  return out;
}
