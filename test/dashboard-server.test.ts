// The dashboard server without a browser: the token, loopback binding, paths
// that try to leave a run folder, garbled lines, decimation of a long run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as keel from 'keel';
import { writeReproRun, writeTrainRun } from './helpers/runs.js';

const { startDashboard, decimateIndices } = keel.dashboard;

/** A raw GET (no URL normalisation: '..' and %2e reach the server as written). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'keel-dash-'));
}

test('dashboard: every request needs the token; the URL line has the random port and token', async () => {
  const dir = tmp();
  writeTrainRun(join(dir, 'run'), 40);
  const d = await startDashboard([join(dir, 'run')]);
  try {
    assert.match(d.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{48}$/);
    assert.notEqual(d.port, 0);
    for (const p of ['/', '/api/runs', '/api/run/r0', '/api/events', '/files/r0/metrics.jsonl']) {
      assert.equal((await get(d.port, p)).status, 403, `${p} without the token`);
      assert.equal((await get(d.port, `${p}?token=${'0'.repeat(48)}`)).status, 403, `${p} with a wrong token`);
    }
    const page = await get(d.port, `/?token=${d.token}`);
    assert.equal(page.status, 200);
    assert.ok(page.body.includes('uPlot'), 'uPlot is inlined in the page');
    assert.ok(!/(src|href)\s*=\s*["']?(https?:)?\/\/|url\(\s*["']?(https?:)?\/\/|@import/i.test(page.body), 'the page loads nothing from another address');
    assert.equal((await get(d.port, '/api/runs', { cookie: `keel-dashboard-token=${d.token}` })).status, 200, 'the cookie the page sets is accepted');
    assert.equal((await get(d.port, `/api/runs?token=${d.token}`, { host: 'evil.example.com' })).status, 403, 'a non-loopback Host header (DNS rebinding) is refused');
  } finally {
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dashboard: only files under the run folders are served (.., encoded variants, absolute paths, symlinks out)', async () => {
  const dir = tmp();
  const run = join(dir, 'run');
  writeReproRun(run);
  writeFileSync(join(dir, 'secret.txt'), 'secret');
  symlinkSync(join(dir, 'secret.txt'), join(run, 'link-out.svg'));
  symlinkSync(dir, join(run, 'dir-out'));
  mkdirSync(join(run, 'figs'));
  writeFileSync(join(run, 'figs', 'ok.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  symlinkSync(join(run, 'figs', 'ok.svg'), join(run, 'link-in.svg'));
  const d = await startDashboard([run]);
  const t = `token=${d.token}`;
  try {
    assert.equal((await get(d.port, `/files/r0/eigenvalues-init.svg?${t}`)).status, 200);
    assert.equal((await get(d.port, `/files/r0/figs/ok.svg?${t}`)).status, 200);
    assert.equal((await get(d.port, `/files/r0/link-in.svg?${t}`)).status, 200, 'a symlink that stays inside is served');
    for (const p of [
      '/files/r0/../secret.txt', '/files/r0/figs/../../secret.txt', '/files/r0/%2e%2e/secret.txt', '/files/r0/%2E%2E%2Fsecret.txt',
      '/files/r0/%252e%252e/secret.txt', '/files/r0/..%5csecret.txt', '/files/r0/%2fetc%2fpasswd', '/files/r0//etc/passwd',
      `/files/r0/${encodeURIComponent(join(dir, 'secret.txt'))}`, '/files/r0/link-out.svg', '/files/r0/dir-out/secret.txt', '/files/r0/figs/%00.svg',
    ]) {
      const r = await get(d.port, `${p}?${t}`);
      assert.ok(r.status === 403 || r.status === 404, `${p}: ${r.status}`);
      assert.ok(!r.body.includes('secret'), `${p} leaks nothing`);
    }
    assert.equal((await get(d.port, `/files/r9/eigenvalues-init.svg?${t}`)).status, 404);
  } finally {
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dashboard: a non-loopback bind without --host is refused; --port takes a number only', async () => {
  const dir = tmp();
  try {
    await assert.rejects(startDashboard([dir], { host: '0.0.0.0' }), /refusing to bind 0\.0\.0\.0.*without --host/);
    await assert.rejects(startDashboard([dir], { host: '192.168.1.10', hostExplicit: false }), /without --host/);
    const cli = spawnSync(process.execPath, [fileURLToPath(new URL('../../bin/keel.js', import.meta.url)), 'dashboard', dir, '--port', '0.0.0.0:8888'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(cli.status, 2);
    assert.match(cli.stderr, /^keel dashboard: .*--port needs a port number.*--host/);
    const d = await startDashboard([dir]);
    assert.equal(d.host, '127.0.0.1');
    assert.equal((d.server.address() as { address: string }).address, '127.0.0.1');
    await d.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dashboard: garbled and torn lines are counted, not fatal; a new sub-run is found; repro verdicts are read', async () => {
  const dir = tmp();
  writeTrainRun(join(dir, 'a'), 60, { garbled: true, nanAt: 30 });
  const d = await startDashboard([dir], { pollMs: 50 });
  const t = `token=${d.token}`;
  try {
    let runs = JSON.parse((await get(d.port, `/api/runs?${t}`)).body) as { id: string; name: string }[];
    assert.deepEqual(runs.map((r) => r.name), [`${dir.split('/').pop()}/a`]);
    appendFileSync(join(dir, 'a', 'metrics.jsonl'), '[1,2]\n{"step": 61, "loss"');
    await new Promise((r) => setTimeout(r, 200));
    const v = JSON.parse((await get(d.port, `/api/run/r0?${t}`)).body);
    assert.equal(v.metrics.garbled, 2, 'the garbled line and a line that is not an object');
    assert.equal(v.metrics.pendingBytes, '{"step": 61, "loss"'.length, 'the unterminated last line is held back');
    assert.equal(v.metrics.points, 60);
    assert.deepEqual(v.metrics.nonFinite, [{ step: 30, field: 'loss', value: 'NaN' }]);
    assert.equal(v.metrics.events.filter((e: { event: string }) => e.event === 'guard').length, 1);
    assert.deepEqual(v.metrics.health.layers, ['features.0', 'head.fc']);
    assert.equal(v.metrics.health.values.gradNorm['head.fc'][2], 'NaN', 'a non-finite health value is marked, not dropped');
    writeReproRun(join(dir, 'b'));
    await new Promise((r) => setTimeout(r, 300));
    runs = JSON.parse((await get(d.port, `/api/runs?${t}`)).body);
    assert.equal(runs.length, 2, 'the new sub-run appears');
    const rv = JSON.parse((await get(d.port, `/api/run/${runs[1].id}?${t}`)).body);
    assert.equal(rv.kind, 'repro');
    assert.deepEqual(rv.results.verdicts.map((x: { outcome: string }) => x.outcome), ['HOLDS', 'FAILS']);
    assert.deepEqual(rv.results.figures.map((f: { path: string }) => f.path), ['eigenvalues-init.svg']);
    assert.equal(rv.results.tables[0].title, 'trained');
  } finally {
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dashboard: decimation keeps each bucket\'s extremes and every non-finite point', () => {
  const n = 100000;
  const y = Array.from({ length: n }, (_, i) => Math.sin(i / 1000));
  y[12345] = 50;
  y[54321] = -50;
  y[777] = Number.NaN;
  y[88888] = Infinity;
  const idx = decimateIndices([y], n, 500);
  assert.ok(idx.length <= 4 * 500 + 2, `${idx.length} points`);
  for (const i of [0, n - 1, 12345, 54321, 777, 88888]) assert.ok(idx.includes(i), `index ${i} kept`);
  assert.deepEqual(idx, [...idx].sort((a, b) => a - b));
});

// The 1,000,000-line timing (< 2 s) is a bench (bench/dashboard-open.mjs), not a timed test:
// here, that a long file is decimated with its spike, its NaN and its event kept.
test('dashboard: a long metrics file is sent decimated, extremes and every event kept', async () => {
  const dir = tmp();
  const run = join(dir, 'big');
  mkdirSync(run);
  const N = 200_000;
  const parts: string[] = [];
  for (let i = 1; i <= N; i++) {
    parts.push(`{"step":${i},"loss":${i === 100_000 ? 'null' : (1 / i).toPrecision(6)},"gradNorm":${i === 150_000 ? 1e6 : 1}}`);
    if (i === 100_000) parts.push(JSON.stringify({ event: 'guard', step: i, policy: 'skip', action: 'skipped', report: { op: 'aten::div' } }));
  }
  writeFileSync(join(run, 'metrics.jsonl'), parts.join('\n') + '\n');
  try {
    const d = await startDashboard([run]);
    const v = JSON.parse((await get(d.port, `/api/run/r0?token=${d.token}`)).body);
    await d.close();
    assert.equal(v.metrics.points, N);
    assert.ok(v.metrics.shown <= 8000, `${v.metrics.shown} points sent`);
    const at = (s: number) => v.metrics.steps.step.indexOf(s);
    assert.ok(at(150_000) >= 0 && v.metrics.steps.fields.gradNorm[at(150_000)] === 1e6, 'the spike is kept');
    assert.ok(at(100_000) >= 0 && v.metrics.steps.fields.loss[at(100_000)] === null, 'the NaN point is kept');
    assert.deepEqual(v.metrics.nonFinite, [{ step: 100_000, field: 'loss', value: 'NaN' }]);
    assert.equal(v.metrics.steps.fields.loss[at(N)], Number((1 / N).toPrecision(6)), 'values read exactly');
    assert.equal(v.metrics.events.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dashboard: verdicts are read in each study\'s shape (stable, mde, nonsmooth, sing)', () => {
  const v = keel.dashboard.findVerdicts({
    verdicts: [{ claim: 'a', holds: true, evidence: 'e1' }, { claim: 'b', holds: null, evidence: 'e2' }],
    verdict: { note: 'n', claims: [{ claim: 'c', outcome: 'confirmed', evidence: 'e3', rule: 'r' }] },
    claims: [{ claim: 'd', verdict: 'MIXED', evidence: 'e4' }],
    sing: { verdicts: [{ id: 'x', statement: 'e', source: 'p. 3', rule: 'r2', outcome: 'inconclusive', ruleOutcome: 'confirmed', evidence: 'e5' }] },
  });
  assert.deepEqual(v.map((x) => [x.claim, x.outcome]), [['a', 'HOLDS'], ['b', 'NOT TESTABLE'], ['c', 'confirmed'], ['d', 'MIXED'], ['e', 'inconclusive']]);
  assert.deepEqual(keel.dashboard.findTables({ sing: { verdicts: [{ statement: 's', outcome: 'x' }] }, runs: [{ a: 1 }] }).map((t) => t.title), ['runs']);
});

// The tail reads in 8 MiB pieces and reuses each position's column while the
// keys repeat: lines across piece boundaries, a line longer than a piece,
// keys that change order or appear late, and appends in odd-sized parts must
// all read as JSON.parse reads them.
test('dashboard: the metrics tail reads pieces, long lines, reordered keys and odd appends as JSON.parse does', () => {
  const dir = tmp();
  const path = join(dir, 'metrics.jsonl');
  const lines: string[] = [];
  for (let i = 1; i <= 120_000; i++) {
    const r: Record<string, unknown> = i % 3 === 0 ? { step: i, accuracy: i / 7, loss: 1 / i } : { step: i, loss: 1 / i, accuracy: i / 7 };
    if (i > 60_000) r.lr = 1e-3 * (i % 5);
    if (i === 70_000) r.loss = null;
    lines.push(JSON.stringify(r));
    if (i === 50_000) lines.push(JSON.stringify({ event: 'guard', step: i, note: 'x'.repeat(9 << 20) }));
  }
  const text = lines.join('\n') + '\n';
  const tail = new keel.dashboard.MetricsTail(path);
  try {
    let at = 0;
    for (const size of [1, 5_000_000, 3, 9_000_000, 17]) {
      appendFileSync(path, text.slice(at, at + size));
      at += size;
      tail.poll();
    }
    appendFileSync(path, text.slice(at));
    tail.poll();
    const want = { step: [] as number[], loss: [] as number[], accuracy: [] as number[], lr: [] as number[] };
    for (const l of lines) {
      const r = JSON.parse(l) as Record<string, number | null | undefined>;
      if (r.event !== undefined) continue;
      want.step.push(r.step as number);
      want.loss.push(r.loss ?? Number.NaN);
      want.accuracy.push(r.accuracy as number);
      want.lr.push(r.lr ?? Number.NaN);
    }
    assert.equal(tail.lines, lines.length);
    assert.equal(tail.garbled, 0);
    assert.equal(tail.pendingBytes, 0);
    assert.deepEqual(tail.steps.step, want.step);
    assert.deepEqual(Object.keys(tail.steps.fields).sort(), ['accuracy', 'loss', 'lr']);
    for (const k of ['loss', 'accuracy', 'lr'] as const) assert.deepEqual(tail.steps.fields[k], want[k], k);
    assert.equal(tail.events.length, 1);
    assert.equal((tail.events[0].note as string).length, 9 << 20);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The dashboard following a real `keel train`: the run folder appears while
// the run writes it, updates arrive as server-sent events without a reload,
// and what the page gets at the end is what metrics.jsonl holds.
test('dashboard: a live keel train appears in a watched folder and updates by server-sent events', { skip: !existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz') && 'Fashion-MNIST is not installed' }, async () => {
  const dir = tmp();
  const d = await startDashboard([dir], { pollMs: 100 });
  const events: string[] = [];
  const stream = request({ host: '127.0.0.1', port: d.port, path: `/api/events?token=${d.token}` }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => { for (const m of c.matchAll(/^event: (\w+)/gm)) events.push(m[1]); });
  });
  stream.on('error', () => {});
  stream.end();
  const KEEL_CLI = join(process.cwd(), 'bin', 'keel.js');
  const run = join(dir, 'live');
  const child = spawn(process.execPath, [KEEL_CLI, 'train', '--model', 'lenet5', '--data', 'fashion-mnist', '--optim', 'adamw', '--steps', '60',
    '--batch-size', '32', '--train-subset', '1920', '--test-subset', '200', '--threads', '1', '--health-every', '10', '--no-progress', '--out', run], { stdio: 'ignore' });
  const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
  try {
    // seen while the run is still going: the run, and a partial curve
    let partial = -1;
    let liveId = '';
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline && child.exitCode === null) {
      const runs = JSON.parse((await get(d.port, `/api/runs?token=${d.token}`)).body) as { id: string; name: string }[];
      const live = runs.find((r) => r.name.endsWith('/live'));
      if (live !== undefined) {
        liveId = live.id;
        const v = JSON.parse((await get(d.port, `/api/run/${live.id}?token=${d.token}`)).body);
        const points = v.metrics?.points ?? 0;
        if (points > 0 && points < 60) { partial = points; break; }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await exited, 0, 'keel train ended');
    assert.ok(partial > 0, 'a partial curve was served while the run was training');
    await new Promise((r) => setTimeout(r, 400));
    assert.ok(events.includes('runs'), `events: ${events.join(',')}`);
    assert.ok(events.filter((e) => e === 'update').length >= 2, `live updates: ${events.join(',')}`);
    const v = JSON.parse((await get(d.port, `/api/run/${liveId}?token=${d.token}`)).body);
    const lines = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = lines.filter((l) => l.event === undefined);
    assert.equal(v.metrics.points, steps.length);
    assert.deepEqual(v.metrics.steps.step, steps.map((l) => l.step));
    assert.deepEqual(v.metrics.steps.fields.loss, steps.map((l) => l.loss));
    assert.equal(v.metrics.health.steps.length, lines.filter((l) => l.event === 'health').length);
    assert.ok(v.metrics.health.steps.length >= 5);
  } finally {
    child.kill('SIGKILL');
    stream.destroy();
    await d.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
