// The `keel` command: one subcommand per user surface. Each subcommand module
// is imported only when called, so that `keel --help` and the doctor work
// even when the native addon is not built.

interface Command {
  summary: string;
  run: (args: string[]) => Promise<number>;
}

const commands: Record<string, Command> = {
  train: {
    summary: 'train a model: --model lenet5 --data fashion-mnist --optim adamw --epochs 2 --out DIR (or --resume DIR)',
    run: async (args) => (await import('./train.js')).train(args),
  },
  doctor: {
    summary: 'check libtorch, CUDA, BLAS, threads, Node and the PyTorch reference (--json)',
    run: async (args) => (await import('./doctor.js')).doctor(args),
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'usage: keel <command> [options]',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'keel <command> --help shows a command\'s options.',
  ].join('\n');
}

/** Runs the CLI with `argv` (without node and the script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    console.error(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    console.error(`keel: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}
