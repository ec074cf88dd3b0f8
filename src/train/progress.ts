// Progress of long work — training, repro grids, audits — one display for all:
// a bar with rate and ETA on a TTY (cli-progress), plain lines otherwise
// (logs, CI, pipes): about every 10 % and at the end. The rate and the ETA
// count only the units done since this process started the work (after a
// resume, not the steps done before it). A bar line fits the terminal's width
// (60 columns and up): what does not fit is cut from the end.
import cliProgress from 'cli-progress';

export interface Progress {
  /** `done` units of `total` so far; fields show after the counts ('loss 0.31'). */
  update(done: number, fields?: Record<string, string | number>): void;
  /** A line of its own (a finished run): above the bar on a TTY, as is otherwise. */
  log(line: string): void;
  stop(): void;
}

/** Where progress goes: process.stderr by default (typed structurally, so that keel's declarations need no @types/node). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  total: number;
  label?: string;
  /**
   * Units already done when this process began (a resumed run's step): the
   * rate and the ETA count only what is done after it. Default: the value of
   * the first update() (fit reports the step it resumes from first).
   */
  start?: number;
  /** Default: a bar when stderr is a TTY. */
  tty?: boolean;
  stream?: ProgressStream;
  /** Plain mode: a line at least every `every` units (default total/10); 0: no lines of its own (the caller logs each item). */
  every?: number;
  /** Terminal width for the bar (default: the stream's columns, else 80). */
  columns?: number;
}

function fmt(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toPrecision(4)) : v}`)
    .join(', ');
}

/** 42s, 3m05s, 2h07m */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

/** Rate and ETA from the units done since `start` in this process. */
class Clock {
  private t0 = performance.now();
  base: number | undefined;
  constructor(readonly total: number, start: number | undefined) {
    this.base = start;
  }
  see(done: number): void {
    if (this.base === undefined) {
      this.base = done;
      this.t0 = performance.now();
    }
  }
  get seconds(): number {
    return (performance.now() - this.t0) / 1000;
  }
  rate(done: number): number {
    const n = done - (this.base ?? 0);
    const s = this.seconds;
    return n > 0 && s > 0 ? n / s : 0;
  }
  eta(done: number): string {
    const r = this.rate(done);
    if (done >= this.total) return '0s';
    return r > 0 ? formatDuration((this.total - done) / r) : '?';
  }
}

export function createProgress(options: ProgressOptions): Progress {
  const stream: ProgressStream = options.stream ?? process.stderr;
  const label = options.label ?? 'progress';
  const total = Math.max(1, options.total);
  const clock = new Clock(total, options.start);
  if (options.tty ?? stream.isTTY) {
    const columns = Math.max(60, options.columns ?? stream.columns ?? 80);
    const digits = String(total).length;
    // label [bar] done/total rate/s ETA 12m05s | fields
    const fixed = label.length + 3 + 2 * digits + 1 + 10 + 12;
    const barsize = Math.max(8, Math.min(30, columns - fixed - 20));
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} {rate}/s ETA {etaText}{info}`,
        stream: stream as NodeJS.WriteStream,
        hideCursor: true,
        barsize,
        linewrap: false,
      },
      cliProgress.Presets.legacy,
    );
    const start = options.start ?? 0;
    bar.start(total, start, { rate: '0', etaText: '?', info: '' });
    return {
      update(done, fields = {}) {
        clock.see(done);
        const info = fmt(fields);
        // the line cut to the width: counts, rate and ETA first, then the fields
        const text = `${label} [${'='.repeat(barsize)}] ${done}/${total} ${formatRate(clock.rate(done))}/s ETA ${clock.eta(done)}`;
        const room = columns - 1 - text.length - 3;
        bar.update(done, { rate: formatRate(clock.rate(done)), etaText: clock.eta(done), info: info && room > 4 ? ` | ${info.length > room ? `${info.slice(0, room - 1)}…` : info}` : '' });
      },
      log(line) {
        stream.write(`\r\x1b[2K${line}\n`);
        (bar as unknown as { render(force: boolean): void }).render(true);
      },
      stop() {
        bar.stop();
      },
    };
  }
  const every = options.every === 0 ? Infinity : Math.max(1, options.every ?? Math.ceil(total / 10));
  let last = options.start ?? -Infinity;
  let lastDone = last;
  let lastFields: Record<string, string | number> = {};
  const line = (done: number) => {
    const info = fmt(lastFields);
    stream.write(`${label} ${done}/${total} (${((100 * done) / total).toFixed(0)}%) ${formatRate(clock.rate(done))}/s ETA ${clock.eta(done)}${info ? ` | ${info}` : ''}\n`);
    last = done;
  };
  return {
    update(done, fields = {}) {
      const first = clock.base === undefined;
      clock.see(done);
      lastDone = done;
      lastFields = fields;
      if (first) {
        last = done; // where this process starts: nothing done yet to report
        return;
      }
      if (every !== Infinity && (done - last >= every || done === total)) line(done);
    },
    log(l) {
      stream.write(`${l}\n`);
    },
    stop() {
      if (every !== Infinity && lastDone !== last && Number.isFinite(lastDone)) line(lastDone);
    },
  };
}

/** A finished item of a grid (a run of a study, a pool item). */
export interface ItemLine {
  /** the grid's name: '[name] 3/40 …'; without one, '[3/40] …' */
  name?: string;
  done: number;
  total: number;
  /** which item ('lenet5 adamw lr=0.001 seed=0') */
  label: string;
  /** the item's own wall time */
  seconds: number;
  /** what came of it ('acc 91.2 %', 'FAILED: …') */
  what?: string;
  /** since the grid started in this process */
  elapsed: number;
  /** items done in this process so far (default done): the ETA counts only these */
  doneHere?: number;
  failed?: number;
}

/**
 * The one line of a finished item, for every study and the pool:
 * `[name] 3/40 label (1.2 s) what — 1m05s elapsed, eta 20m00s, 1 failed`.
 */
export function itemLine(o: ItemLine): string {
  const here = o.doneHere ?? o.done;
  const eta = o.done < o.total && here > 0 ? `, eta ${formatDuration((o.elapsed / here) * (o.total - o.done))}` : '';
  const head = o.name !== undefined ? `[${o.name}] ${o.done}/${o.total}` : `[${o.done}/${o.total}]`;
  return `${head} ${o.label} (${o.seconds.toFixed(1)} s)${o.what ? ` ${o.what}` : ''} — ${formatDuration(o.elapsed)} elapsed${eta}${o.failed ? `, ${o.failed} failed` : ''}`;
}
