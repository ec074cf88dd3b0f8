// The whole `keel` command line, declared in one place: every command and
// subcommand, its options, its help. commander parses; this module gives all
// of them the same help layout, the same refusal of unknown options and stray
// arguments, and the same error line (`keel <command>: <what is wrong>`, exit
// 2). Implementations are imported only when their command runs, so help,
// `--version` and usage errors work without the native addon.
//
//   keel train                  src/cli/train.ts (with --nproc etc.: src/cli/train-agent.ts)
//   keel repro sing             src/experiments/sing/index.ts
//   keel repro stable           src/experiments/stable/cli.ts
//   keel repro mde              src/experiments/mde/cli.ts
//   keel repro maxpool          src/experiments/nonsmooth/cli.ts
//   keel audit nonsmooth        src/experiments/nonsmooth/cli.ts
//   keel doctor                 src/cli/doctor.ts
//   keel dashboard DIR...       src/dashboard/server.ts
//   keel report DIR             src/dashboard/report.ts
//   keel help [command]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, Help, InvalidArgumentError, Option } from 'commander';
import { MODEL_IDS as SING_MODELS } from '../experiments/sing/grid.js';
import { finiteString, intAtLeast, listOf, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './args.js';
import { ParseError } from './errors.js';

/** What the running command sets: its exit code, its name for error lines, hints for a missing data set. */
export interface RunState {
  exitCode: number;
  command: string;
  datasetHints: string[];
}

/** The default output folder of a command that writes one: runs/<command>-<subcommand>. */
export function defaultOut(...path: string[]): string {
  return `runs/${path.join('-')}`;
}

export const TRAIN_MODELS = ['lenet5', 'mlp', 'vgg11', 'vgg11_bn', 'resnet18'];
// src/train/precision.ts's PRECISIONS (not imported: this module loads nothing of Keel)
export const TRAIN_PRECISIONS = ['32-true', '64-true', 'bf16-mixed', 'fp16-mixed', 'bf16-true', 'bf16-emulated', 'fp16-emulated', 'fp8-e4m3-emulated', 'fp8-e5m2-emulated', 'fp8-e4m3-scaled'];
const NONSMOOTH_MODELS = ['lenet5', 'vgg11', 'vgg11_bn', 'resnet18', 'mlp'];
// keel.audit.AUDIT_FORMATS_ACCEPTED (not imported: this module loads nothing of Keel; a test holds them equal)
export const AUDIT_FORMATS = ['fp64', 'fp32', 'bf16', 'fp16', 'fp8-e4m3', 'fp8-e5m2', 'fp8-e4m3fnuz', 'fp8-e5m2fnuz'];
const DATA_SETS = ['fashion-mnist', 'synthetic'];
const FASHION_MNIST_HINT = 'install it with `apt install dataset-fashion-mnist`, or set KEEL_FASHION_MNIST_ROOT to the folder of its IDX files';

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

const NOUNS: Record<string, string> = { keel: 'command', 'keel repro': 'reproduction', 'keel audit': 'audit' };

function unknownSubcommand(cmd: Command, name: string): string {
  const path = commandPath(cmd);
  const available = cmd.commands.map((c) => c.name()).filter((n) => n !== 'help');
  return `unknown ${NOUNS[path] ?? 'command'} '${name}' (available: ${available.join(', ')}); usage: ${path} ${cmd.usage()}`;
}

/** `keel help nope`, `keel repro help nope`: the same error as `keel nope` (commander would print the help). */
export function checkHelpSubject(program: Command, argv: readonly string[]): void {
  let cmd = program;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === 'help' && argv[i + 1] !== undefined && !argv[i + 1].startsWith('-')) {
      if (!cmd.commands.some((c) => c.name() === argv[i + 1])) throw new ParseError(commandPath(cmd), unknownSubcommand(cmd, argv[i + 1]));
      return;
    }
    const next = cmd.commands.find((c) => c.name() === argv[i]);
    if (next === undefined) return;
    cmd = next;
  }
}

/** Every command: the same help layout, exit override, error wording. */
function configure(cmd: Command): Command {
  cmd
    .allowExcessArguments(false)
    .showSuggestionAfterError(true)
    .configureHelp({
      showGlobalOptions: true,
      formatHelp(c: Command, helper: Help): string {
        return Help.prototype.formatHelp.call(this, c, helper).replace(/^Usage:/, 'usage:');
      },
    })
    .configureOutput({ outputError: () => {} })
    .exitOverride((err: CommanderError) => {
      const path = commandPath(cmd);
      let message = err.message.replace(/^error: /, '');
      if (err.code === 'commander.unknownCommand') {
        message = unknownSubcommand(cmd, /'([^']*)'/.exec(message)?.[1] ?? '');
      } else if (err.code === 'commander.excessArguments') {
        const stray = cmd.args.slice(cmd.registeredArguments.length);
        message = `unexpected argument${stray.length > 1 ? 's' : ''} ${stray.map((a) => `'${a}'`).join(' ')} (${path} takes ${cmd.registeredArguments.length ? 'only its arguments and ' : 'only '}options; ${path} --help lists them)`;
      }
      throw new ParseError(path, message.split('\n')[0], err.exitCode, err.code);
    });
  return cmd;
}

function sub(parent: Command, name: string, description: string): Command {
  const cmd = configure(new Command(name)).description(description);
  parent.addCommand(cmd);
  return cmd;
}

/** The options of a command as `{ 'long-name': value }` (what the hand-written parsers used to produce). */
export function optionRecord(cmd: Command): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  const values = cmd.opts();
  for (const opt of cmd.options) {
    const long = (opt.long ?? '').replace(/^--/, '');
    const v = values[opt.attributeName()];
    if (opt.negate) {
      if (v === false) out[long] = true;
    } else if (v === true) out[long] = true;
    else if (typeof v === 'string') out[long] = v;
    else if (typeof v === 'number') out[long] = String(v);
  }
  return out;
}

export function buildProgram(state: RunState): Command {
  const run = (cmd: Command, impl: (o: Record<string, unknown>, cmd: Command) => Promise<number>, datasetHints: string[] = []) => {
    cmd.action(async (_o: unknown, c: Command) => {
      state.command = commandPath(c);
      state.datasetHints = [FASHION_MNIST_HINT, ...datasetHints];
      state.exitCode = await impl(c.opts(), c);
    });
  };

  // a reproduction or audit that wrote DIR/results.json ends with its report (keel report DIR)
  const thenReport = (impl: (o: Record<string, unknown>, cmd: Command) => Promise<number>) => async (o: Record<string, unknown>, c: Command): Promise<number> => {
    const code = await impl(o, c);
    const out = typeof o.out === 'string' ? o.out : undefined;
    if (code === 0 && out !== undefined && existsSync(join(out, 'results.json'))) {
      const { writeReport } = await import('../dashboard/report.js');
      const r = await writeReport(out);
      process.stderr.write(`${state.command}: report ${r.html} (and ${r.md})\n`);
    }
    return code;
  };

  const program = configure(new Command('keel'))
    .usage('<command> [options]')
    .description('Keel: numerically reliable deep-learning training on libtorch')
    .version(version(), '-V, --version', 'print the version')
    .option('--verbose', 'print the stack trace of an error (also KEEL_DEBUG=1)')
    .helpCommand('help [command]', 'show the help of a command')
    .addHelpText('after', '\nexit codes: 0 done, 1 the run failed, 2 bad usage. Errors are one line on stderr: keel <command>: <what is wrong>.\nkeel <command> --help (or keel help <command>) shows a command\'s options.');

  // keel train
  const train = sub(program, 'train', 'train a zoo model; writes DIR/metrics.jsonl, DIR/checkpoints/, DIR/model.safetensors, DIR/summary.json')
    .summary('train a zoo model (--out DIR or --resume DIR)')
    .option('--model <name>', `model: ${TRAIN_MODELS.join('|')}`, 'lenet5')
    .addOption(new Option('--data <name>', 'data set').choices(DATA_SETS).default('fashion-mnist'))
    .addOption(new Option('--optim <name>', 'optimizer').choices(['sgd', 'adam', 'adamw', 'sing']).default('adamw'))
    .option('--lr <x>', 'learning rate (default per optimizer: sgd 0.05, adam/adamw 1e-3, sing 1e-2)', positiveNumber('--lr'))
    .option('--weight-decay <x>', 'weight decay (default per optimizer)', nonNegativeNumber('--weight-decay'))
    .option('--momentum <x>', 'SGD momentum', nonNegativeNumber('--momentum'), 0.9)
    .option('--epochs <n>', 'epochs', positiveInt('--epochs'))
    .option('--steps <n>', 'optimizer steps (overrides --epochs when smaller)', positiveInt('--steps'))
    .option('--batch-size <n>', 'batch size per process (with --nproc the global batch is batch-size × nproc × nnodes, as PyTorch DDP; the learning rate is not rescaled)', positiveInt('--batch-size'), 128)
    .option('--seed <n>', 'seed of initialisation, shuffling and augmentation', nonNegativeInt('--seed'), 0)
    .option('--standardize-grads', 'standardise gradients (SING\'s layer-wise standardisation) in front of the optimizer', false)
    .addOption(new Option('--schedule <name>', 'learning-rate schedule after warm-up').choices(['cosine', 'constant']).default('cosine'))
    .option('--warmup <n>', 'linear warm-up steps', nonNegativeInt('--warmup'), 0)
    .option('--checkpoint-every <n>', 'a checkpoint every N steps (and at the end)', positiveInt('--checkpoint-every'), 200)
    .option('--keep-checkpoints <n>', 'checkpoints kept', positiveInt('--keep-checkpoints'), 3)
    .option('--train-subset <n>', 'use the first N training examples', positiveInt('--train-subset'))
    .option('--test-subset <n>', 'use the first N test examples', positiveInt('--test-subset'))
    .option('--augment', 'random crop and flip (synthetic data)', false)
    .option('--threads <n>', 'intra-op threads (default: all cores)', positiveInt('--threads'))
    .addOption(new Option('--guard <policy>', 'NaN guard: check every step; on a non-finite one replay it, name the op, and raise|skip|rollback|repair').choices(['raise', 'skip', 'rollback', 'repair']))
    .option('--no-progress', 'no progress bar or progress lines')
    .option('--out <dir>', 'output folder (required: keel train has no default one)')
    .option('--resume <dir>', 'continue the run in DIR from its latest intact checkpoint (--steps, --epochs, --checkpoint-every, --threads, --guard may change)')
    .option('--overwrite', 'start afresh in an --out folder that holds a run (removes that run\'s files)', false)
    .addOption(new Option('--precision <name>', 'how steps run, by Lightning\'s names (fp16-mixed adds a GradScaler; *-emulated rounds every op; default 32-true)').choices(TRAIN_PRECISIONS))
    .option('--health-every <n>', 'a per-layer health line (gradient and parameter norms, update ratio, saturation, dead ReLUs) in the metrics log every N steps; 0 for none (default 50)', nonNegativeInt('--health-every'))
    .option('--nproc <n>', 'data-parallel on N local worker processes, as torchrun --standalone (this process is their agent and trains nothing; output prefixed [rank R]; rank 0 writes DIR and draws progress; each worker gets cores/N threads unless --threads)', positiveInt('--nproc'))
    .option('--nnodes <n>', 'machines taking part, each running --nproc workers (default $NNODES, else 1)', positiveInt('--nnodes'))
    .option('--node-rank <r>', 'this machine\'s index, 0 … nnodes-1; node 0 owns DIR (default $NODE_RANK, else 0)', nonNegativeInt('--node-rank'))
    .option('--master-addr <host>', 'the address of node 0, reachable from every machine (default $MASTER_ADDR; 127.0.0.1 on one machine)')
    .option('--master-port <port>', 'node 0\'s rendezvous port (default $MASTER_PORT; a free port on one machine, 29500 on several)', intAtLeast('--master-port', 1, 65535))
    .option('--max-restarts <k>', 'when a worker dies, stop all and start them again from the latest checkpoint, up to K times, as torchrun\'s elastic agent (default 0)', nonNegativeInt('--max-restarts'));
  run(train, async (o, c) => {
    const agent = await import('./train-agent.js');
    if (agent.wantsAgent(o)) return agent.agentFromOptions(o, c);
    return (await import('./train.js')).trainFromOptions(o, c);
  }, ['or use --data synthetic']);

  // keel repro <paper>
  const repro = sub(program, 'repro', 'reproduce a paper: keel repro sing|stable|mde|maxpool [--quick] [--out DIR]')
    .summary('reproduce a paper: sing|stable|mde|maxpool')
    .usage('<paper> [options]')
    .helpCommand('help [paper]', 'show the help of a reproduction');

  const sing = sub(repro, 'sing', 'SING (Courtois et al. 2023, arXiv:2305.15997): AdamW vs SING on Fashion-MNIST with LeNet-5, ResNet-18 and a deep plain MLP; LR sweep × seeds; table + verdict on the paper\'s claims')
    .summary('SING vs AdamW (arXiv:2305.15997)')
    .option('--quick', 'smoke run (< 1 minute): tiny subsets, few steps, 2 LRs, 2 seeds, small models', false)
    .option('--out <dir>', `write DIR/results.json (every run, the summary, the verdict) and DIR/report.md (default ${defaultOut('repro', 'sing')})`)
    .option('--models <list>', `comma-separated subset of ${SING_MODELS.join(',')}`, (v: string) => {
      const names = v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      for (const n of names) if (!(SING_MODELS as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown model '${n}' (${SING_MODELS.join(', ')})`);
      if (names.length === 0) throw new InvalidArgumentError(`give at least one of ${SING_MODELS.join(', ')}`);
      return names;
    })
    .option('--seeds <n>', 'seeds per learning rate (default 3; --quick 2)', positiveInt('--seeds'))
    .option('--resnet-width <n>', 'ResNet-18 base width (default 16; the paper\'s is 64; --quick 4)', positiveInt('--resnet-width'))
    .option('--threads <n>', 'intra-op threads (default: all cores)', positiveInt('--threads'))
    .option('--resume', 'continue the grid in DIR (same options) from its results.json', false)
    .option('--jobs <n>', 'child processes of 1 libtorch thread each (default 0: in this process, with --threads)', nonNegativeInt('--jobs'))
    .option('--no-progress', 'no progress bar (the per-run lines still print)');
  run(sing, thenReport(async (o) => (await import('../experiments/sing/index.js')).reproSingFromOptions(o)));

  const stable = sub(repro, 'stable', 'Stable architectures (Haber & Ruthotto 2017, arXiv:1705.03341): growth at init vs depth (dense, and conv on Fashion-MNIST states), multi-level training on swiss roll, peaks, ellipses and a Fashion-MNIST subset (depth ≤ N), eigenvalues (exact for dense blocks, Arnoldi Ritz values for conv blocks); writes DIR/results.json and SVG plots')
    .summary('stable ODE-view networks (arXiv:1705.03341)')
    .option('--quick', 'smoke run', false)
    .option('--out <dir>', 'output folder', defaultOut('repro', 'stable'))
    .option('--max-depth <n>', 'deepest network trained (training depths 4, 8, … up to N)', intAtLeast('--max-depth', 4))
    .option('--iters <k>', 'the 2-D sets\' steps per level', intAtLeast('--iters', 4))
    .option('--no-fmnist', 'skip the Fashion-MNIST part')
    .option('--resume', 'continue the grid in DIR (same options) from its results.json', false)
    .option('--jobs <n>', 'child processes of 1 libtorch thread each (default 0: in this process)', nonNegativeInt('--jobs'))
    .option('--no-progress', 'no progress bar (the per-run lines still print)');
  run(stable, thenReport(async (o) => (await import('../experiments/stable/cli.js')).runFromOptions(o)));

  const mde = sub(repro, 'mde', 'NaN divergence in monocular depth estimation (Kim, Jang & Kim 2023, arXiv:2311.03938) on SynthDepth: loss (sqrt / safe SILog) × head × variance × final init × seeds, in float32 and emulated fp16 and bf16, unguarded; then the naive configuration under each keel.Guard policy')
    .summary('NaN divergence in depth estimation (arXiv:2311.03938)')
    .option('--quick', 'smoke run (< 1 min): 1 seed, a few steps', false)
    .option('--causes', 'instead of the ablation grid, the cause sweep: the sqrt near 0, the log of a saturated sigmoid and the final-layer init, each with the cause and with its fix over a small grid of λ, precision, decoder feature scale, lr and max depth (~10 min with 10 seeds)', false)
    .option('--out <dir>', `write DIR/results.json (default ${defaultOut('repro', 'mde')}; with --causes ${defaultOut('repro', 'mde-causes')})`)
    .option('--seeds <n>', 'seeds in float32 (default 10); with --causes, per setting and arm', intAtLeast('--seeds', 1))
    .option('--low-seeds <n>', 'seeds in fp16 and in bf16 (default 10)', intAtLeast('--low-seeds', 0))
    .option('--steps <n>', 'training steps per run (default 100)', intAtLeast('--steps', 1))
    .option('--threads <n>', 'libtorch threads (default 1: the depth net is tiny, and one thread ran its steps 4× faster than two on a 2-core machine)', intAtLeast('--threads', 1))
    .option('--no-guard', 'skip the guard part')
    .option('--resume', 'continue the grid in DIR (same options) from its results.json', false)
    .option('--jobs <n>', 'child processes of 1 libtorch thread each (default 0: in this process)', nonNegativeInt('--jobs'))
    .option('--no-progress', 'no progress bar (the per-run lines still print)');
  run(mde, thenReport(async (o) => (await import('../experiments/mde/cli.js')).runFromOptions(o)));

  const maxpool = sub(repro, 'maxpool', 'Nonsmooth AD (Boustany 2024, arXiv:2401.02736; Bertoin et al. 2021): MaxPool-β and ReLU\'(0) training impact across precisions')
    .summary("MaxPool-β / ReLU'(0) training impact (arXiv:2401.02736)")
    .option('--quick', 'smoke run', false)
    .option('--out <dir>', 'output folder', defaultOut('repro', 'maxpool'))
    .option('--jobs <n>', 'child processes of 1 libtorch thread each (default: available cores); 0 = in this process', finiteString('--jobs'))
    .option('--models <list>', `comma-separated subset of ${NONSMOOTH_MODELS.filter((m) => m !== 'mlp').join(',')}`, listOf('--models', NONSMOOTH_MODELS))
    .option('--data <list>', `comma-separated subset of ${DATA_SETS.join(',')}`, listOf('--data', DATA_SETS))
    .option('--betas <list>', 'β values (default 0,1,10,100,1000,10000)', listOf('--betas'))
    .option('--relu0 <list>', 'ReLU\'(0) values (default 0,1)', listOf('--relu0'))
    .option('--precision <list>', `comma-separated subset of ${AUDIT_FORMATS.join(',')} (default fp32,bf16,fp16)`, listOf('--precision', AUDIT_FORMATS))
    .option('--optims <list>', 'comma-separated subset of sgd,adam', listOf('--optims', ['sgd', 'adam']))
    .option('--seeds <n>', 'seeds (default 3; --quick 2)', finiteString('--seeds'))
    .option('--steps <n>', 'steps per run (default per model)', finiteString('--steps'))
    .option('--batch-size <n>', 'batch size (default 32)', finiteString('--batch-size'))
    .option('--train <n>', 'training examples (default 8192)', finiteString('--train'))
    .option('--test <n>', 'test examples (default 1000)', finiteString('--test'))
    .option('--width <n>', 'VGG/ResNet channels (default 8; 64 = full size)', finiteString('--width'))
    .option('--lr <rates>', 'fixed learning rates, e.g. sgd=0.03,adam=0.001 (default: tuned per model, data set and optimizer in fp32, default rule)')
    .option('--full', 'every model and data set gets every β × ReLU\'(0) (default: the budgeted design, see grid.ts)')
    .option('--no-remedies', 'skip the remedy runs')
    .option('--plan', 'print the planned runs per model, data set and role, and exit')
    .option('--no-progress', 'no progress bar (the per-run lines still print)');
  run(maxpool, thenReport(async (_o, c) => (await import('../experiments/nonsmooth/cli.js')).reproMaxpool(optionRecord(c))), ['or use --data synthetic']);

  // keel audit <what>
  const audit = sub(program, 'audit', 'audit numerical reliability: keel audit nonsmooth --model vgg11 --precision fp64,fp32,bf16,fp16 [--quick] [--out DIR]')
    .summary('audit numerical reliability: nonsmooth')
    .usage('<audit> [options]')
    .helpCommand('help [audit]', 'show the help of an audit');
  const nonsmooth = sub(audit, 'nonsmooth', 'bifurcation audit of ReLU\'(0) and max-pool backward choices per precision, and the compensation zone; writes DIR/results.json and SVG plots')
    .summary("ReLU'(0) / max-pool bifurcation zone per precision")
    .addOption(new Option('--model <name>', 'model (default vgg11)').choices(NONSMOOTH_MODELS))
    .addOption(new Option('--data <name>', 'data set (default fashion-mnist)').choices(DATA_SETS))
    .option('--precision <list>', `comma-separated subset of ${AUDIT_FORMATS.join(',')} (default: all)`, listOf('--precision', AUDIT_FORMATS))
    .option('--draws <n>', 'θ draws (default 4; --quick 2; --protocol paper: θ per ReLU cell and precision, default 500, the paper 1000)', finiteString('--draws'))
    .option('--batches <n>', 'minibatches per draw (default 16; --quick 3; --protocol paper: at most n per θ, default the whole epoch)', finiteString('--batches'))
    .option('--batch-size <n>', 'batch size (default 64; --quick 16; --protocol paper: the MaxPool study\'s, default 128)', finiteString('--batch-size'))
    .option('--width <w>', 'VGG/ResNet channels (default 16; --protocol paper 64; 64 = full size)', finiteString('--width'))
    .option('--depth <d>', 'MLP depth (default 3)', finiteString('--depth'))
    .option('--hidden <h>', 'MLP width (default 256)', finiteString('--hidden'))
    .option('--sweep', 'MLP: Bertoin et al.\'s depth/width/batch variations (--protocol paper: all three sweeps)')
    .addOption(new Option('--protocol <name>', 'keel (default: Keel\'s budgeted audit of every precision) or paper (the papers\' own protocols: Bertoin et al.\'s per-θ epoch, Boustany\'s VGG-11 epoch)').choices(['keel', 'paper']))
    .option('--study <list>', '--protocol paper: comma-separated subset of relu,maxpool (default both)', listOf('--study', ['relu', 'maxpool']))
    .option('--sweeps <list>', '--protocol paper: the paper\'s sweeps to run, subset of depth,width,batch (depth 1/2/3/5/6, width 16/64/256/512/1024, batch 16/64/256/512/1024)', listOf('--sweeps', ['depth', 'width', 'batch']))
    .option('--first-layer', '--protocol paper: compare the first layer\'s weight gradient only, as Bertoin et al.\'s code (default: every parameter)')
    .option('--draws-fp64 <n>', '--protocol paper: fp64 θ per cell (default 10, as the paper; fp64 runs every θ a whole epoch)', finiteString('--draws-fp64'))
    .option('--maxpool-draws <n>', '--protocol paper: θ of the MaxPool study (default 1, as the paper)', finiteString('--maxpool-draws'))
    .option('--chunk <n>', '--protocol paper: MaxPool minibatches per work item (default 20)', finiteString('--chunk'))
    .option('--train <n>', '--protocol paper: use the first n training images (default all 60,000)', finiteString('--train'))
    .option('--jobs <n>', '--protocol paper: child processes (default 2; 0 = in this process)', finiteString('--jobs'))
    .option('--resume', '--protocol paper: keep the work items already in DIR/results.json and run the rest')
    .option('--quick', 'smoke run (minutes)')
    .option('--out <dir>', 'output folder', defaultOut('audit', 'nonsmooth'))
    .option('--no-progress', 'no progress bar (the per-run lines still print)');
  run(nonsmooth, thenReport(async (_o, c) => (await import('../experiments/nonsmooth/cli.js')).auditNonsmooth(optionRecord(c))), ['or use --data synthetic']);

  // keel doctor
  const doctor = sub(program, 'doctor', 'check libtorch, CUDA, BLAS, threads, Node and the PyTorch reference; exit 0 when healthy, 1 when something is wrong')
    .summary('check the set-up: libtorch, BLAS, threads, Node')
    .option('--json', 'print the report as JSON');
  run(doctor, async (o) => (await import('./doctor.js')).runDoctor({ json: o.json === true }));

  // keel dashboard
  const dashboard = sub(program, 'dashboard', 'serve run folders as a live local page (127.0.0.1, a random port and a token unless told otherwise); prints one line with its URL; Ctrl-C stops it')
    .summary('a live local page of one or more run folders')
    .argument('<dirs...>', 'run folders (or folders of runs) to show')
    .option('--port <n>', 'port (default: a random free one)', (v: string): number => {
      const n = Number(v);
      if (!/^\d+$/.test(v) || n > 65535) throw new InvalidArgumentError(`--port needs a port number (0-65535)${v.includes(':') ? '; give the address with --host' : ''}`);
      return n;
    })
    .option('--host <address>', 'bind this address instead of 127.0.0.1 (other machines can then reach it, with the token)')
    .option('--no-open', 'do not open a browser');
  run(dashboard, async (o, c) => {
    const d = await import('../dashboard/server.js');
    const dash = await d.runDashboard(c.args, {
      ...(typeof o.port === 'number' ? { port: o.port } : {}), ...(typeof o.host === 'string' ? { host: o.host } : {}), open: o.open !== false,
    });
    await new Promise<void>((done) => {
      const stop = (): void => void dash.close().then(done);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  });

  // keel report
  const report = sub(program, 'report', 'write one self-contained HTML file (inline SVG and CSS, no external URL) and its Markdown twin for a run or a repro output')
    .summary('a self-contained HTML and Markdown report of a run folder')
    .argument('<dir>', 'the run or repro output folder')
    .option('--out <file.html>', 'where to write the HTML (default DIR/run-report.html; the Markdown twin beside it)');
  run(report, async (o, c) => {
    const { writeReport } = await import('../dashboard/report.js');
    const r = await writeReport(c.args[0], typeof o.out === 'string' ? { out: o.out } : {});
    console.log(`keel report: ${r.html}\nkeel report: ${r.md}`);
    return 0;
  });

  return program;
}
