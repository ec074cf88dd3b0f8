// The CLI's error style, one for every command:
//
//   keel <command>: <what is wrong>        on stderr, one line
//   exit 2  bad usage (unknown option, stray argument, bad value: UsageError)
//   exit 1  a run that failed (any other error)
//
// A stack trace only with --verbose or KEEL_DEBUG=1. This module imports no
// part of Keel, so that it works when the native addon is not built.

/** Bad usage: an option's value, a missing option, a combination. Exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A usage error from the parser (commander), already naming its command. */
export class ParseError extends UsageError {
  constructor(readonly command: string, message: string, readonly exitCode = 2, readonly code = '') {
    super(message);
    this.name = 'ParseError';
  }
}

/** The error of a data set that is not installed (thrown by src/data with this code). */
export const DATASET_MISSING = 'KEEL_DATASET_MISSING';

interface GuardReportLike { cause: string; format(): string }

function isGuardError(e: unknown): e is Error & { report: GuardReportLike } {
  return e instanceof Error && e.name === 'NonFiniteError' && typeof (e as { report?: GuardReportLike }).report?.format === 'function';
}

export function debugEnabled(argv: readonly string[] = []): boolean {
  return process.env.KEEL_DEBUG === '1' || argv.includes('--verbose');
}

/**
 * The text printed for an error of `command` ('keel train', ...) and its exit
 * code: usage errors 2, everything else 1.
 */
export function describeError(command: string, e: unknown, options: { debug?: boolean; hints?: string[] } = {}): { text: string; exitCode: number } {
  if (e instanceof UsageError) return { text: `${command}: ${e.message}`, exitCode: 2 };
  let text: string;
  if (isGuardError(e)) {
    // the guard's report, by its own formatter, under one line saying what happened
    const body = e.report.format().split('\n').map((l) => `  ${l}`).join('\n');
    text = `${command}: the NaN guard stopped the run (--guard raise): ${e.report.cause.split('\n')[0]}\n${body}`;
  } else if (e instanceof Error && (e as { code?: string }).code === DATASET_MISSING) {
    const { dataset, file } = e as { dataset?: string; file?: string };
    const hints = options.hints?.length ? `: ${options.hints.join(', ')}` : '';
    text = `${command}: ${dataset ?? 'the data set'} is not installed (${file ?? e.message.split('\n')[0]} not found)${hints}`;
  } else {
    const message = e instanceof Error ? e.message : String(e);
    text = `${command}: ${message.split('\n')[0] || (e instanceof Error ? e.name : 'error')}`;
  }
  if (options.debug && e instanceof Error && e.stack) text += `\n${e.stack}`;
  // an error that knows it is about usage (a run folder's refusal) says so with exitCode 2
  return { text, exitCode: (e as { exitCode?: unknown } | null)?.exitCode === 2 ? 2 : 1 };
}
