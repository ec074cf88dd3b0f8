// The `keel` command: one program (src/cli/program.ts) parses every command;
// this runner turns what happens into an exit code and at most one error line:
//
//   0  done        1  the run failed        2  bad usage
//
//   keel <command>: <what is wrong>     (stderr; a stack trace only with
//                                        --verbose or KEEL_DEBUG=1)
import { buildProgram, checkHelpSubject, type RunState } from './program.js';
import { debugEnabled, describeError, ParseError } from './errors.js';

const SHOWN = new Set(['commander.help', 'commander.helpDisplayed', 'commander.version']);

/** Runs the CLI with `argv` (without node and the script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const state: RunState = { exitCode: 0, command: 'keel', datasetHints: [] };
  const program = buildProgram(state);
  try {
    checkHelpSubject(program, argv);
    await program.parseAsync(argv, { from: 'user' });
    return state.exitCode;
  } catch (e) {
    // help or the version was printed (on stderr, with exit 2, when a command is missing)
    if (e instanceof ParseError && SHOWN.has(e.code)) return e.exitCode === 0 ? 0 : 2;
    const command = e instanceof ParseError ? e.command : state.command;
    const { text, exitCode } = describeError(command, e, { debug: debugEnabled(argv), hints: state.datasetHints });
    process.stderr.write(`${text}\n`);
    return exitCode;
  }
}
