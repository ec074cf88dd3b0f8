// The one shape of a study (issue 17 §4): a grid of runs, a runner, the claims
// with the rule judging each, the report. A study is a folder that defines a
// `Study` and calls runStudy(); this file does what every study did on its
// own: the results folder, --resume from results.json, the runs in this
// process or in a pool of child processes (--jobs; run-items.ts), the progress
// line of each finished run (src/train/progress.ts), results.json rewritten as
// runs finish with the claims judged on the runs so far.
//
//   const results = await runStudy(MY_STUDY, protocol, { out, resume, jobs });
//   console.log(MY_STUDY.report(results));
//
// results.json holds at least { protocol, runs, startedAt, wallTimeMs,
// complete } (the study's assemble() adds its summary and verdict); --resume
// keeps the runs of a results.json whose protocol has the same key() and that
// finished without an error, and runs the rest.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as keel from '../index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { runItems } from './run-items.js';

/** A run as results.json keeps it: the spec's fields, its result, or the error it threw (a bug, not an outcome). */
export type RunRecord<S, R> = S & { result: R | null; error?: string };

/** The machine a study ran on, as results.json records it. */
export interface Machine { cores: number; threads: number; libtorch: string; node: string }

/** What the harness hands a study's assemble(): the runs so far, the claims judged on them, the session's facts. */
export interface GridState<Rec, C = unknown> {
  runs: Rec[];
  /** study.claims() on these runs */
  claims: C[];
  complete: boolean;
  startedAt: string;
  /** summed over sessions when resumed */
  wallTimeMs: number;
  machine: Machine;
}

export interface Study<P, S extends { id: string }, V, Rec extends { id: string; result: unknown; error?: string }, Res, Shared = unknown, C = unknown> {
  /** the grid's name in progress lines run by the pool ('repro sing') */
  name: string;
  /** the grid: every run of the protocol, in the order they run */
  grid(protocol: P): S[];
  /** what defines the runs: --resume refuses a results.json whose protocol has another key */
  key(protocol: P): string;
  /** what the in-process runs share (a data set loaded once); its dispose() runs after the grid */
  open(protocol: P): Shared;
  dispose?(shared: Shared): void;
  /** one run in this process; what it returns becomes the run's record through record() */
  run(spec: S, shared: Shared, protocol: P): V;
  /** the module that runs a spec in a child process with --jobs ≥ 1 (see study-worker.ts); none: always in this process */
  module?: URL;
  /** the record of a run: default { ...spec, result: value } or { ...spec, result: null, error } */
  record?(spec: S, value: V | null, error: string | undefined, protocol: P): Rec;
  /** the progress line: which run, and what came of it */
  label(spec: S): string;
  describe(rec: Rec): string;
  /** the paper's claims, each judged by its stated rule on the runs so far (a partial grid too) */
  claims(protocol: P, runs: Rec[]): C[];
  /** results.json from the runs so far: the protocol, the runs, the summary, state.claims */
  assemble(protocol: P, state: GridState<Rec, C>): Res;
  /** the printed report (report.md) */
  report(results: Res): string;
}

export interface StudyOptions {
  /** the results folder: DIR/results.json; none: nothing is written */
  out?: string;
  /** keep the finished runs of DIR/results.json */
  resume?: boolean;
  /** child processes of 1 libtorch thread each (needs study.module); 0 or none: in this process */
  jobs?: number;
  /** rewrite results.json after every k-th run (default 1) and at the end */
  saveEvery?: number;
  /** progress lines (default: stderr, above a bar on a TTY) */
  log?: (line: string) => void;
  /** the bar on a TTY (default true; never with a log of one's own) */
  progress?: boolean;
  /** the shared state of the in-process runs when the caller holds it (and disposes of it); default study.open(protocol) */
  shared?: unknown;
  /** after the grid, before the last save (a study's extra part, e.g. mde's guarded runs); its state is in the last assemble() */
  after?: (log: (line: string) => void) => Promise<void> | void;
}

type AnyRecord = { id: string; result: unknown; error?: string };

/** The record of a run: the study's record(), else { ...spec, result } or { ...spec, result: null, error }. */
export function recordOf<P, S extends { id: string }, V, Rec extends AnyRecord>(study: Pick<Study<P, S, V, Rec, unknown>, 'record'>, spec: S, value: V | null, error: string | undefined, protocol: P): Rec {
  if (study.record) return study.record(spec, value, error, protocol);
  return (error === undefined ? { ...spec, result: value } : { ...spec, result: null, error }) as unknown as Rec;
}

/** One run and its record; what it throws becomes the record's error. */
export function runAndRecord<P, S extends { id: string }, V, Rec extends AnyRecord, Shared>(study: Pick<Study<P, S, V, Rec, unknown, Shared>, 'run' | 'record'>, spec: S, shared: Shared, protocol: P): Rec {
  let value: V;
  try {
    value = study.run(spec, shared, protocol);
  } catch (e) {
    return recordOf(study, spec, null, e instanceof Error ? e.message : String(e), protocol);
  }
  return recordOf(study, spec, value, undefined, protocol);
}

export function machineInfo(): Machine {
  return { cores: availableParallelism(), threads: keel.getNumThreads(), libtorch: String(keel.libtorchInfo().version), node: process.version };
}

/** Runs the study's grid (resuming, in this process or a pool) and returns its results, written to out/results.json when out is given. */
export async function runStudy<P, S extends { id: string }, V, Rec extends { id: string; result: unknown; error?: string }, Res, Shared, C>(
  study: Study<P, S, V, Rec, Res, Shared, C>, protocol: P, options: StudyOptions = {},
): Promise<Res> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const record = (spec: S, value: V | null, error?: string): Rec => recordOf(study, spec, value, error, protocol);
  const specs = study.grid(protocol);
  const out = options.out !== undefined ? resolve(options.out) : undefined;
  const resultsPath = out ? join(out, 'results.json') : undefined;
  if (out) mkdirSync(out, { recursive: true });

  let runs: Rec[] = [];
  let previousWallMs = 0;
  let startedAt = new Date().toISOString();
  if (options.resume && resultsPath && existsSync(resultsPath)) {
    const previous = JSON.parse(readFileSync(resultsPath, 'utf8')) as { protocol: P; runs: Rec[]; wallTimeMs?: number; startedAt?: string };
    if (study.key(previous.protocol) !== study.key(protocol)) {
      throw new Error(`--resume: ${resultsPath} was made with another protocol (options differ); use another --out or the same options`);
    }
    const wanted = new Set(specs.map((sp) => sp.id));
    runs = previous.runs.filter((r) => r.result !== null && r.error === undefined && wanted.has(r.id));
    previousWallMs = previous.wallTimeMs ?? 0;
    startedAt = previous.startedAt ?? startedAt;
    log(`resuming: ${runs.length} of ${specs.length} runs already done in ${resultsPath}`);
  }

  const t0 = performance.now();
  const machine = machineInfo();
  const save = (complete: boolean): Res => {
    const results = study.assemble(protocol, { runs, claims: study.claims(protocol, runs), complete, startedAt, wallTimeMs: previousWallMs + performance.now() - t0, machine });
    if (resultsPath) writeFileAtomic(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
    return results;
  };
  const done = new Set(runs.map((r) => r.id));
  const todo = specs.filter((s) => !done.has(s.id));
  const saveEvery = options.saveEvery ?? 1;
  let finished = 0;
  const accept = (rec: Rec): void => {
    runs.push(rec);
    finished++;
    if (resultsPath && (finished % saveEvery === 0 || finished === todo.length)) save(false);
  };

  // every run becomes a record, in this process or in a child (study-worker.ts): a run that throws is a record with its error
  const jobs = study.module !== undefined ? options.jobs ?? 0 : 0;
  const own = jobs === 0 && options.shared === undefined;
  const shared = jobs >= 1 ? undefined : own ? study.open(protocol) : (options.shared as Shared);
  try {
    await runItems<{ module: string; protocol: P; spec: S }, Rec>(todo.map((spec) => ({ module: study.module ? fileURLToPath(study.module) : '', protocol, spec })), {
      jobs, worker: new URL('./study-worker.js', import.meta.url), name: '', barLabel: study.name,
      here: (it) => runAndRecord(study, it.spec, shared as Shared, protocol),
      label: (it) => study.label(it.spec),
      describe: (rec) => (rec.error !== undefined ? `ERROR ${rec.error}` : study.describe(rec)),
      before: specs.length - todo.length,
      ...(options.log !== undefined ? { log: options.log } : {}),
      ...(options.progress === false || options.log !== undefined ? { progress: false } : {}),
      onResult: (r, i) => accept(r.ok ? r.value : record(todo[i], null, r.error.split('\n')[0])),
    });
  } finally {
    if (own) study.dispose?.(shared as Shared);
  }
  // the runs in grid order, whichever finished first
  const order = new Map(specs.map((s, i) => [s.id, i]));
  runs.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
  await options.after?.(log);
  return save(true);
}
