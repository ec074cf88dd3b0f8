// keel report: one self-contained HTML file and its Markdown twin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as keel from 'keel';
import { GUARD_EVENT, writeReproRun, writeTrainRun } from './helpers/runs.js';

/** External references an HTML file could load: src/href/url()/@import to another address. */
const EXTERNAL = /(src|href)\s*=\s*["']?(https?:)?\/\/|url\(\s*["']?(https?:)?\/\/|@import/i;

test('report: a training run with a NaN — config, summary, curves, health table, the guard event with its report; self-contained', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-report-'));
  try {
    writeTrainRun(dir, 60, { nanAt: 30, garbled: true });
    const out = join(dir, 'out', 'r.html');
    const { html, md } = await keel.dashboard.writeReport(dir, { out });
    assert.equal(html, out);
    assert.equal(md, join(dir, 'out', 'r.md'));
    const h = readFileSync(html, 'utf8');
    const m = readFileSync(md, 'utf8');
    assert.ok(!EXTERNAL.test(h), 'no external URL in the HTML');
    assert.ok(!/<script/i.test(h), 'no script');
    assert.ok((h.match(/<svg/g) ?? []).length >= 3, 'curves as inline SVG');
    for (const s of ['lenet5', 'finalLoss', '1 garbled line(s) skipped', 'loss = NaN at step 30']) {
      assert.ok(h.includes(s), `HTML has ${s}`);
      assert.ok(m.includes(s), `Markdown has ${s}`);
    }
    const r = GUARD_EVENT.report;
    for (const s of [r.op, r.module, r.callSite, r.cause, ...r.remedies, GUARD_EVENT.action]) {
      assert.ok(h.includes(s.replace(/'/g, '&#39;')), `HTML report shows ${s}`);
      assert.ok(m.includes(s), `Markdown report shows ${s}`);
    }
    // the health table at a few steps: first (10), last (60), and the NaN step (30)
    const healthRows = [...m.matchAll(/^\| (\d+) \| (features\.0|head\.fc) \|/gm)].map((x) => `${x[1]} ${x[2]}`);
    for (const s of ['10 features.0', '30 head.fc', '60 head.fc']) assert.ok(healthRows.includes(s), `health row ${s} in ${healthRows.join(', ')}`);
    assert.match(m, /\| 30 \| head\.fc \| NaN \|/, 'the NaN gradient norm is in the table');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('report: a repro output — verdict table, result rows, figures inline as data: URIs and linked in Markdown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-report-'));
  try {
    writeReproRun(dir);
    const { html, md } = await keel.dashboard.writeReport(dir);
    assert.equal(html, join(dir, 'run-report.html'));
    const h = readFileSync(html, 'utf8');
    const m = readFileSync(md, 'utf8');
    assert.ok(!EXTERNAL.test(h));
    assert.match(m, /\| HOLDS \| Hamiltonian blocks keep the forward propagation stable with depth \| growth 1\.02 at N = 64 \|/);
    assert.match(m, /\| FAILS \| plain ResNets blow up with depth \|/);
    assert.match(m, /\| peaks \| resnet \| 8 \| 0\.87 \|/);
    assert.ok(m.includes('![eigenvalues-init](eigenvalues-init.svg)'));
    assert.ok(h.includes(`data:image/svg+xml;base64,${Buffer.from(readFileSync(join(dir, 'eigenvalues-init.svg'))).toString('base64')}`));
    assert.ok(readFileSync(join(dir, 'report.md'), 'utf8').startsWith('# Stable'), 'the study\'s own report.md is left as it was');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
