// The dashboard in a real browser: Debian's chromium driven by playwright-core
// (no browser download). Checks the data the charts hold, not only that they
// exist. Screenshots go to build/test-artifacts/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as keel from 'keel';
import { GUARD_EVENT, stepLine, writeReproRun, writeTrainRun } from './helpers/runs.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; scripts/bootstrap.sh does) to run the browser tests`;
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));

type Browser = import('playwright-core').Browser;
type Page = import('playwright-core').Page;

describe('dashboard in chromium', { skip, timeout: 60_000 }, () => {
  let browser: Browser;
  let dir: string;
  let dash: keel.dashboard.Dashboard;
  let page: Page;
  let lines: Record<string, unknown>[];

  before(async () => {
    const { chromium } = await import('playwright-core');
    mkdirSync(ARTIFACTS, { recursive: true });
    dir = mkdtempSync(join(tmpdir(), 'keel-dash-ui-'));
    lines = writeTrainRun(join(dir, 'nan-run'), 60, { nanAt: 30, garbled: true });
    writeTrainRun(join(dir, 'clean-run'), 40);
    writeReproRun(join(dir, 'repro'));
    dash = await keel.dashboard.startDashboard([dir], { pollMs: 100 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(dash.url);
    await page.waitForFunction(() => {
      const s = (window as any).keelDashboard;
      // the loss chart is redrawn as each run's view arrives: wait for the one with both train runs
      return s && s.runs.length === 3 && Object.keys(s.views).length === 3 && s.charts.loss
        && s.charts.loss.series.filter((x: any) => typeof x.label === 'string' && !x.label.startsWith('eval ') && x.label.endsWith('-run')).length === 2;
    }, undefined, { timeout: 20_000 });
  });

  after(async () => {
    await browser?.close();
    await dash?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the page loads the runs and the loss chart holds the run\'s actual points', async () => {
    const data = await page.evaluate(() => {
      const s = (window as any).keelDashboard;
      const c = s.charts.loss;
      return { x: Array.from(c.data[0] as number[]), series: c.series.slice(1).map((x: any) => x.label), ys: (c.data as any[]).slice(1).map((y) => Array.from(y as number[])) };
    });
    // runs sorted by name: clean-run (r0), nan-run (r1), repro (r2); each run's step loss is a series
    const nanSteps = lines.filter((l) => l.event === undefined && typeof l.step === 'number' && l.step !== 999);
    const root = dir.split('/').pop();
    const iLoss = data.series.indexOf(`${root}/nan-run`);
    assert.ok(iLoss >= 0, `series ${data.series.join(', ')}`);
    for (const l of nanSteps) {
      const k = data.x.indexOf(l.step as number);
      assert.ok(k >= 0, `step ${l.step} on the x axis`);
      const y = data.ys[iLoss][k];
      if (l.loss === null) assert.equal(y, null, `step ${l.step}: NaN is a gap`);
      else assert.equal(y, l.loss, `step ${l.step}`);
    }
    const clean = data.series.indexOf(`${root}/clean-run`);
    assert.equal(data.ys[clean][data.x.indexOf(40)], stepLine(40).loss);
    assert.ok(data.ys[clean][data.x.indexOf(50)] == null, 'clean-run stops at step 40');
    // the heatmap holds the health lines' gradient norms
    const heat = await page.evaluate(() => {
      const s = (window as any).keelDashboard;
      return s.heatmaps[s.runs.find((r: any) => r.name.endsWith('/nan-run')).id];
    });
    assert.deepEqual(heat.layers, ['features.0', 'head.fc']);
    assert.deepEqual(heat.steps, [10, 20, 30, 40, 50, 60]);
    assert.equal(heat.values[1][2], 'NaN', 'the NaN gradient norm of head.fc at step 30 is marked');
    assert.equal(heat.values[0][1], 0.05 * 20);
    // per-layer update ratio and dead fraction, from the health lines
    const health = await page.evaluate(() => {
      const s = (window as any).keelDashboard;
      const id = s.runs.find((r: any) => r.name.endsWith('/nan-run')).id;
      const u = s.charts[`updateRatio:${id}`];
      const d = s.charts[`dead:${id}`];
      return { x: Array.from(u.data[0]), labels: u.series.slice(1).map((x: any) => x.label), u0: Array.from(u.data[1]), dead0: Array.from(d.data[1]) };
    });
    assert.deepEqual(health.x, [10, 20, 30, 40, 50, 60]);
    assert.deepEqual(health.labels, ['features.0', 'head.fc']);
    assert.deepEqual(health.u0, [10, 20, 30, 40, 50, 60].map((i) => 1e-3 * (1 + i / 50)));
    assert.deepEqual(health.dead0, [10, 20, 30, 40, 50, 60].map((i) => 0.02 * (i / 10)));
    // repro output: verdicts and the figure
    assert.equal(await page.locator('table.verdicts tr').count(), 3);
    const fig = page.locator('.figure img').first();
    await fig.waitFor();
    await page.waitForFunction(() => { const img = document.querySelector('.figure img') as HTMLImageElement | null; return img !== null && img.complete && img.naturalWidth > 0; }, undefined, { timeout: 10_000 });
    assert.equal(await fig.evaluate((img: HTMLImageElement) => img.naturalWidth), 120, 'the SVG figure loads through the token-checked file route');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-runs.png'), fullPage: true });
  });

  test('a garbled metrics line is counted on the page, not fatal', async () => {
    const badge = page.locator('.badge.garbled');
    assert.equal(await badge.count(), 1);
    assert.match(await badge.innerText(), /^1 garbled line skipped$/);
  });

  test('a run with an injected NaN shows the guard event; clicking it shows its report', async () => {
    const button = page.locator('#timeline button.guard');
    assert.equal(await button.count(), 1);
    assert.equal(await button.getAttribute('data-step'), '30');
    await button.click();
    const detail = page.locator('#event-detail');
    await detail.waitFor({ state: 'visible' });
    const text = await detail.innerText();
    const r = GUARD_EVENT.report;
    for (const s of [r.op, r.phase, r.module, r.callSite, r.cause, ...r.remedies, GUARD_EVENT.action, 'float32[8, 10]', 'nans 3']) assert.ok(text.includes(s), `the report shows '${s}'`);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-guard-event.png'), fullPage: false });
  });

  test('a growing metrics file updates the page without reload', async () => {
    await page.evaluate(() => { (window as any).__notReloaded = true; });
    const before = await page.evaluate(() => (window as any).keelDashboard.updates);
    const extra = [61, 62, 63].map((i) => ({ ...stepLine(i), loss: 0.001 * i }));
    appendFileSync(join(dir, 'nan-run', 'metrics.jsonl'), extra.map((l) => JSON.stringify(l)).join('\n') + '\n');
    await page.waitForFunction(() => {
      const c = (window as any).keelDashboard.charts.loss;
      return c && Array.from(c.data[0] as number[]).includes(63);
    }, undefined, { timeout: 10_000 });
    const got = await page.evaluate(() => {
      const s = (window as any).keelDashboard;
      const c = s.charts.loss;
      const i = c.series.findIndex((x: any) => x.label.endsWith('/nan-run') && !x.label.startsWith('eval'));
      const k = Array.from(c.data[0] as number[]).indexOf(62);
      return { y: c.data[i][k], updates: s.updates, same: (window as any).__notReloaded === true };
    });
    assert.equal(got.y, 0.062);
    assert.ok(got.updates > before);
    assert.ok(got.same, 'the page was not reloaded');
  });

  test('a new sub-run appears live', async () => {
    writeTrainRun(join(dir, 'z-new-run'), 20);
    await page.waitForFunction(() => (window as any).keelDashboard.charts.loss?.series.some((x: any) => x.label.endsWith('/z-new-run')), undefined, { timeout: 10_000 });
  });

  test('a request without the token or outside the run folders is refused', async () => {
    const base = dash.url.replace(/\/\?token=.*$/, '');
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    const r1 = await p.goto(`${base}/`);
    assert.equal(r1?.status(), 403);
    const r2 = await p.goto(`${base}/api/run/r0`);
    assert.equal(r2?.status(), 403);
    const r3 = await p.goto(`${base}/files/r2/%2e%2e%2f%2e%2e%2fetc%2fpasswd?token=${dash.token}`);
    assert.ok(r3?.status() === 403 || r3?.status() === 404, `traversal: ${r3?.status()}`);
    await ctx.close();
  });
});
