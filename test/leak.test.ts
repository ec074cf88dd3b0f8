// A leak says so (issue 13 §4): a PyTorch-style loop that never disposes gets
// one warning naming where its tensors are made; the idiomatic loop (a scope
// a step) gets none; KEEL_DEBUG=1 records creation sites from the start.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const CHILD = join(process.cwd(), 'build', 'test', 'leak-child.js');

function child(mode: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CHILD, mode], { encoding: 'utf8', env: { ...process.env, KEEL_DEBUG: '', ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { warnings: string[]; outsideScopes: number; byOrigin: Record<string, number> };
}

test('a loop that never disposes is warned about once, naming its creation sites', () => {
  const r = child('leak');
  assert.equal(r.warnings.length, 1, JSON.stringify(r.warnings));
  assert.match(r.warnings[0], /^\d+ tensors are live outside any keel\.scope and the count keeps growing \(\+\d+ over the last \d+ made\); most were made at .*leak-child\.js:\d+:\d+ \(\d+\)/);
  assert.match(r.warnings[0], /Wrap each step in keel\.scope/);
  const sites = Object.keys(r.byOrigin);
  assert.ok(sites.length > 0 && sites.every((s) => !s.includes('/dist/')), JSON.stringify(r.byOrigin));
  assert.ok(sites[0].includes('leak-child.js'), sites[0]);
});

test('the idiomatic loop (a scope a step) gets no warning and leaves nothing outside scopes to grow', () => {
  const r = child('scoped');
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.byOrigin, {});
  assert.ok(r.outsideScopes < 100, `${r.outsideScopes}`);
});

test('KEEL_DEBUG=1 records creation sites from the start', () => {
  const r = child('scoped', { KEEL_DEBUG: '1' });
  assert.deepEqual(r.warnings, []);
  // the model, data and optimizer state were made outside scopes
  assert.ok(Object.keys(r.byOrigin).some((s) => s.includes('leak-child.js')), JSON.stringify(r.byOrigin));
});
