// runStudy (src/experiments/study.ts), the one study harness, on a toy study:
// results.json in the study's shape with the claims judged, a run that throws
// is a record with its error, --resume keeps the finished runs and runs the
// rest (counting on from them), --jobs runs the grid in child processes with
// the same records, another protocol refuses to resume.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StudyOptions } from '../dist/experiments/study.js';
import { study, type ToyProtocol, type ToyResults } from './study-fixture.js';

const { runStudy } = (await import(new URL('../../dist/experiments/study.js', import.meta.url).href)) as {
  runStudy: (s: typeof study, p: ToyProtocol, o?: StudyOptions) => Promise<ToyResults>;
};

test('runStudy: records, an error record, claims, results.json; --resume runs only what is missing', async () => {
  const out = mkdtempSync(join(tmpdir(), 'keel-study-'));
  try {
    const lines: string[] = [];
    const r = await runStudy(study, { n: 5, failAt: 3 }, { out, log: (l) => lines.push(l) });
    assert.equal(r.complete, true);
    assert.deepEqual(r.runs.map((x) => x.id), ['x=0', 'x=1', 'x=2', 'x=3', 'x=4']);
    assert.equal(r.runs[3].result, null);
    assert.equal(r.runs[3].error, 'no square for 3');
    assert.deepEqual(r.runs.filter((x) => x.result).map((x) => x.result!.y), [0, 1, 4, 16]);
    assert.deepEqual(r.verdict.claims.map((c) => [c.outcome, c.evidence]), [['holds', '4 runs']]);
    assert.match(lines[0], /^\[1\/5\] toy x=0 \(\d+\.\d s\) y=0 — \d+s elapsed, eta /);
    assert.match(lines[3], /^\[4\/5\] toy x=3 .* ERROR no square for 3/);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as ToyResults;
    assert.deepEqual(saved.runs, r.runs);
    assert.equal(study.report(saved), 'toy: 5 runs, holds');

    // resume: x=3 ran into an error, so it runs again (now it succeeds: same key, failAt changed)
    const again: string[] = [];
    const r2 = await runStudy(study, { n: 5, failAt: null }, { out, resume: true, log: (l) => again.push(l) });
    assert.match(again[0], /resuming: 4 of 5 runs already done/);
    assert.equal(again.length, 2);
    assert.match(again[1], /^\[5\/5\] toy x=3 .* y=9/);
    assert.deepEqual(r2.runs.map((x) => x.result!.y), [0, 1, 4, 9, 16]);
    assert.equal(r2.startedAt, r.startedAt);
    await assert.rejects(runStudy(study, { n: 6, failAt: null }, { out, resume: true, log: () => {} }), /another protocol/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('runStudy --jobs 2: the same records from child processes', { timeout: 120_000 }, async () => {
  const lines: string[] = [];
  const here = await runStudy(study, { n: 4, failAt: 2 }, { log: () => {} });
  const pool = await runStudy(study, { n: 4, failAt: 2 }, { jobs: 2, log: (l) => lines.push(l) });
  const strip = (r: ToyResults) => r.runs.map(({ result, ...rest }) => ({ ...rest, y: result?.y ?? null }));
  assert.deepEqual(strip(pool), strip(here));
  assert.ok(pool.runs.some((x) => x.result !== null && x.result.pid !== process.pid), 'ran in a child');
  assert.equal(lines.length, 4);
  assert.ok(lines.every((l) => /^\[\d\/4\] toy x=\d/.test(l)), lines.join('\n'));
});
