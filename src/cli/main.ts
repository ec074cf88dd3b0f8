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
  repro: {
    summary: 'reproduce a paper: keel repro sing|stable|maxpool|mde [--quick] [--out DIR] (keel repro --help lists them)',
    run: async (args) => (await import('./repro.js')).repro(args),
  },
  audit: {
    summary: 'audit numerical reliability: keel audit nonsmooth --model vgg11 --precision fp64,fp32,bf16,fp16 --out DIR [--quick]',
    run: async (args) => {
      const [what, ...rest] = args;
      if (what !== 'nonsmooth') {
        console.error(`keel audit: unknown audit '${what ?? ''}' (available: nonsmooth)`);
        return what === '--help' || what === '-h' ? 0 : 2;
      }
      return (await import('../experiments/nonsmooth/cli.js')).runAudit(rest);
    },
  },
  dashboard: {
    summary: 'serve run folders as a live local page: keel dashboard DIR... [--port N] [--host H] [--no-open]',
    run: async (args) => {
      const d = await import('../dashboard/server.js');
      if (args.includes('--help') || args.includes('-h')) {
        console.log('usage: keel dashboard DIR... [--port N] [--host H] [--no-open]');
        return 0;
      }
      let o;
      try {
        o = d.parseDashboardArgs(args);
      } catch (e) {
        console.error((e as Error).message);
        return 2;
      }
      const dash = await d.runDashboard(o.dirs, o);
      await new Promise<void>((done) => {
        const stop = () => void dash.close().then(done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    },
  },
  report: {
    summary: 'write a self-contained HTML report and its Markdown twin: keel report DIR [--out FILE.html]',
    run: async (args) => {
      const i = args.indexOf('--out');
      const out = i >= 0 ? args[i + 1] : undefined;
      const rest = args.filter((_, k) => k !== i && k !== i + 1 || i < 0);
      if (rest.length !== 1 || rest[0].startsWith('-') || (i >= 0 && !out)) {
        console.error('usage: keel report DIR [--out FILE.html]');
        return rest.includes('--help') || rest.includes('-h') ? 0 : 2;
      }
      const r = await (await import('../dashboard/report.js')).writeReport(rest[0], { out });
      console.log(`wrote ${r.html} and ${r.md}`);
      return 0;
    },
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
