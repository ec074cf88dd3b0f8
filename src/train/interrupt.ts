// Ctrl-C and SIGTERM for long commands (`keel train`, `repro`, `audit`): the
// first signal aborts an AbortSignal that the work checks between steps (it
// stops after the step in flight and saves what it has); a second one exits
// at once. The terminal's cursor is shown again on the way out (progress
// bars hide it). Exit codes follow the shell's 128 + signal number.

export interface Interrupt {
  readonly signal: AbortSignal;
  /** The signal received, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** 130 after SIGINT, 143 after SIGTERM, undefined when none came. */
  readonly exitCode: number | undefined;
  /** Removes the handlers. */
  dispose(): void;
}

const CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Shows the cursor again if a progress bar hid it. */
export function restoreTerminal(stream: NodeJS.WriteStream = process.stderr): void {
  if (stream.isTTY) stream.write('\x1b[?25h');
}

/**
 * Installs SIGINT and SIGTERM handlers for `command` (named in the messages).
 * `onFirst` is told of the first signal (e.g. to say a checkpoint is coming).
 */
export function handleInterrupts(command: string, onFirst?: (signal: NodeJS.Signals) => void): Interrupt {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals) => {
    if (received !== undefined) {
      restoreTerminal();
      process.stderr.write(`\n${command}: ${sig} again: exiting now, without saving\n`);
      process.exit(CODES[sig] ?? 130);
    }
    received = sig;
    restoreTerminal();
    if (onFirst) onFirst(sig);
    else process.stderr.write(`\n${command}: ${sig}: stopping after the current step (again to exit at once)\n`);
    controller.abort(sig);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    get exitCode() {
      return received !== undefined ? CODES[received] ?? 130 : undefined;
    },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
