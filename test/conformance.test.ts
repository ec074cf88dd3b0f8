// OpInfo conformance, the fixed subset run by `npm test` (the full set:
// scripts/conformance.mjs, which writes docs/conformance.md). PyTorch's own
// operator test inputs (op_db's sample_inputs, generated in a subprocess with
// /usr/bin/python3 and a fixed seed) are replayed against Keel in child
// processes and compared with torch.ops.aten.<name>.<overload>: outputs,
// gradients for a fixed cotangent, and the out= and in-place variants. A case
// that crashes its child is a failure of that case, never of the runner.
//
// Every disagreement must be listed in KNOWN_FAILURES with its reason; a known
// failure that no longer fails is an error too (delete its entry), so the list
// cannot rot into a blanket excuse.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { torchAvailable } from './helpers/torch.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The subset: these OpInfos (they exercise past defects) plus SUBSET more drawn with opinfo.py's fixed seed. */
const ALWAYS = ['sort', 'sgn', 'repeat_interleave', 'max.reduction_with_dim', 'var_mean', 'topk', 'add', 'sum', 'cat', 'bernoulli'];
const SUBSET = 100;
const MAX_SAMPLES = 3;

interface Known {
  /** the ATen overload, e.g. 'sort.default' */
  overload: string;
  phases: Phase[];
  /** why, naming the issue */
  reason: string;
}
type Phase = 'fwd' | 'grad' | 'out' | 'inplace';

/**
 * Disagreements this subset is known to show, each with its issue. Empty since main's engine
 * fixes for issue 12 (before them: multi-output out= overloads — sort, max.dim, topk, frexp,
 * histogram, linalg_lstsq, linalg_slogdet, unique_consecutive — returned the first out tensor
 * in every slot, and reading sgn's efficient-zero gradient segfaulted the process).
 */
const KNOWN_FAILURES: Known[] = [];

interface Case { id: string; overload: string; opinfo: string }
interface Driver {
  generate(o: { subset?: number; maxSamples?: number; ops?: string[]; timeoutMs?: number }): { meta: Record<string, unknown>; ops: { opinfo: string; cases: unknown[]; adapter: string[] }[] };
  flatten(data: unknown): Case[];
  replay(cases: unknown[], o?: { batch?: number; env?: Record<string, string> }): Promise<Map<number, Partial<Record<Phase, string>>>>;
  phasesOf(c: unknown): Phase[];
}

const driver = (await import(pathToFileURL(join(ROOT, 'scripts', 'conformance', 'driver.mjs')).href)) as Driver;

describe('OpInfo conformance (fixed subset)', { skip: !torchAvailable() && 'no PyTorch at /usr/bin/python3' }, () => {
  let data: ReturnType<Driver['generate']>;
  let cases: Case[];
  let verdicts: Map<number, Partial<Record<Phase, string>>>;

  before(async () => {
    data = driver.generate({ subset: SUBSET, maxSamples: MAX_SAMPLES, ops: ALWAYS, timeoutMs: 600_000 });
    cases = driver.flatten(data);
    verdicts = await driver.replay(cases);
  });

  test('the subset is what it should be: OpInfos, cases and every phase', (t) => {
    // ALWAYS plus SUBSET drawn ones, less those drawn that ALWAYS already has
    assert.ok(data.ops.length >= SUBSET && data.ops.length <= ALWAYS.length + SUBSET, `${data.ops.length} OpInfos`);
    const count: Record<Phase, number> = { fwd: 0, grad: 0, out: 0, inplace: 0 };
    for (const c of cases) for (const p of driver.phasesOf(c)) count[p]++;
    t.diagnostic(`${data.ops.length} OpInfos, ${cases.length} cases: ${JSON.stringify(count)}`);
    // floors well below today's counts (674 forward, 423 gradient, 467 out=, 158 in-place):
    // a harness that silently stopped producing cases must fail here
    assert.ok(count.fwd >= 300, `forward cases: ${count.fwd}`);
    assert.ok(count.grad >= 150, `gradient cases: ${count.grad}`);
    assert.ok(count.out >= 150, `out= cases: ${count.out}`);
    assert.ok(count.inplace >= 30, `in-place cases: ${count.inplace}`);
    assert.equal(verdicts.size, cases.length, 'a verdict for every case');
  });

  test('Keel agrees with torch.ops.aten on every case but the known failures', () => {
    const unexpected: string[] = [];
    const hit = new Set<Known>();
    cases.forEach((c, i) => {
      const v = verdicts.get(i) ?? {};
      for (const p of driver.phasesOf(c)) {
        const verdict = v[p] ?? 'no verdict';
        // 'excused: ...': a gradient PyTorch itself cannot reproduce or does not test (replay.mjs)
        if (verdict === 'pass' || verdict.startsWith('excused: ')) continue;
        const known = KNOWN_FAILURES.find((k) => k.overload === c.overload && k.phases.includes(p));
        if (known) hit.add(known);
        else unexpected.push(`${c.id} ${c.overload} ${p}: ${verdict}`);
      }
    });
    const stale = KNOWN_FAILURES.filter((k) => !hit.has(k)).map((k) => `${k.overload} [${k.phases.join(', ')}] (${k.reason})`);
    assert.deepEqual(unexpected, [], `${unexpected.length} unexpected disagreements:\n${unexpected.slice(0, 40).join('\n')}`);
    assert.deepEqual(stale, [], `known failures that now pass (remove them from KNOWN_FAILURES):\n${stale.join('\n')}`);
  });

  test('the harness can fail: a corrupted reference value is caught', async () => {
    const i = cases.findIndex((c) => c.overload === 'add.Tensor');
    assert.ok(i >= 0);
    const c = structuredClone(cases[i]) as Case & { fwd: { out: { v: (number | string)[] } } };
    c.fwd.out.v[0] = (c.fwd.out.v[0] as number) + 1;
    const v = await driver.replay([c]);
    assert.match(String(v.get(0)?.fwd), /value \[0\]/);
  });

  test('a case that kills its process fails alone: the cases around it still run and pass', async () => {
    const some = cases.filter((c) => c.overload === 'add.Tensor').slice(0, 3);
    assert.equal(some.length, 3);
    const v = await driver.replay(some, { env: { KEEL_CONFORMANCE_CRASH: some[1].id } });
    assert.equal(v.get(0)?.fwd, 'pass');
    assert.match(String(v.get(1)?.fwd), /^crash: the process died \(SIGSEGV\)/);
    for (const p of driver.phasesOf(some[1]).slice(1)) assert.equal(v.get(1)?.[p], 'not run: an earlier phase crashed');
    assert.equal(v.get(2)?.fwd, 'pass');
  });

  test('every OpInfo is either compared or listed as needing an adapter, with a reason', () => {
    for (const op of data.ops) {
      assert.ok(op.cases.length > 0 || op.adapter.length > 0, `${op.opinfo}: no cases and no reason`);
      for (const r of op.adapter) assert.ok(r.length > 10, `${op.opinfo}: reason '${r}'`);
    }
  });
});
