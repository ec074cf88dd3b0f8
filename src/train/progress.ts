// Progress of long work: a bar with rate and ETA on a TTY (cli-progress),
// plain lines otherwise (logs, CI), about every 10 % and at the end.
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

/** Where progress goes: process.stderr by default (typed structurally, so that keel's declarations need no @types/node). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  total: number;
  label?: string;
  /** Default: a bar when stderr is a TTY. */
  tty?: boolean;
  stream?: ProgressStream;
  /** Plain mode: a line at least every `every` units (default total/10). */
  every?: number;
}

function fmt(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toPrecision(4)) : v}`)
    .join(', ');
}

export function createProgress(options: ProgressOptions): Progress {
  const stream: ProgressStream = options.stream ?? process.stderr;
  const label = options.label ?? 'progress';
  const total = Math.max(1, options.total);
  if (options.tty ?? stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} | {rate}/s | ETA {eta_formatted} | {info}`,
        stream: stream as NodeJS.WriteStream,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    const start = performance.now();
    bar.start(total, 0, { rate: '0', info: '' });
    return {
      update(done, fields = {}) {
        const seconds = (performance.now() - start) / 1000;
        bar.update(done, { rate: seconds > 0 ? (done / seconds).toFixed(1) : '0', info: fmt(fields) });
      },
      stop() {
        bar.stop();
      },
    };
  }
  const every = Math.max(1, options.every ?? Math.ceil(total / 10));
  const start = performance.now();
  let last = -Infinity;
  let lastDone = 0;
  let lastFields: Record<string, string | number> = {};
  const line = (done: number) => {
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 ? (total - done) / rate : 0;
    const info = fmt(lastFields);
    stream.write(`${label} ${done}/${total} (${((100 * done) / total).toFixed(0)}%) ${rate.toFixed(1)}/s ETA ${eta.toFixed(0)}s${info ? ` | ${info}` : ''}\n`);
    last = done;
  };
  return {
    update(done, fields = {}) {
      lastDone = done;
      lastFields = fields;
      if (done - last >= every || done === total) line(done);
    },
    stop() {
      if (lastDone !== last) line(lastDone);
    },
  };
}
