// The TensorBoard writer, read back by an independent reader: a Python script
// on Debian's python3-protobuf with the published event.proto/summary.proto
// field numbers and its own CRC-32C, which checks every record's checksums.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as keel from 'keel';

const PYTHON = '/usr/bin/python3';
const READER = fileURLToPath(new URL('../../test/helpers/read_tfevents.py', import.meta.url));
const hasProtobuf = (() => {
  try {
    execFileSync(PYTHON, ['-c', 'import google.protobuf'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = hasProtobuf ? false : 'Debian python3-protobuf is not installed (apt-get install python3-protobuf)';

interface Value { tag: string; simple_value?: number | string; histo?: Record<string, any>; plugin?: string; dtype?: number; text?: string[] }
interface Ev { step: number; wall_time: number; file_version?: string; values?: Value[]; records?: number }

function read(path: string): Ev[] {
  return execFileSync(PYTHON, [READER, path], { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l) as Ev);
}
function values(evs: Ev[]): (Value & { step: number })[] {
  return evs.flatMap((e) => (e.values ?? []).map((v) => ({ ...v, step: e.step })));
}
const f32 = (x: number) => Math.fround(x);

test('tfevents: scalars, NaN and ±inf kept, histograms with non-finite counted apart, text; every CRC checked', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-tb-'));
  try {
    const w = new keel.log.TfEventsWriter(dir, { host: 'testhost' });
    assert.match(w.path, /events\.out\.tfevents\.\d+\.testhost$/);
    w.addScalar('train/loss', 2.5, 1, 1000.5);
    w.addScalar('train/loss', 0.1, 2);
    w.addScalar('train/loss', Number.NaN, 3);
    w.addScalar('train/loss', Infinity, 4);
    w.addScalar('train/loss', -Infinity, 5);
    w.addScalar('big/step', 7, 2 ** 40);
    const counts = w.addHistogram('weights/fc', [1, 2, 3, 4, Number.NaN, Infinity, -Infinity, -Infinity], 10);
    assert.deepEqual(counts, { finite: 4, nan: 1, posInf: 1, negInf: 2 });
    const t = keel.tensor([[0.5, -0.5], [1.5, 0.25]]);
    w.addHistogram('weights/conv', t, 11);
    t.dispose();
    w.addHistogram('grads/empty', [Number.NaN], 12);
    const named = w.addHistograms('weights', [['fc1.weight', new Float32Array([1, 2])], ['fc1.bias', undefined]], 12);
    assert.deepEqual(Object.keys(named), ['fc1.weight']);
    w.addText('guard/events', 'NaN in **aten::log** — ünïcode', 13);
    w.close();

    const evs = read(w.path);
    assert.equal(evs[0].file_version, 'brain.Event:2');
    assert.equal(evs.at(-1)!.records, evs.length - 1);
    const vs = values(evs);
    const loss = vs.filter((v) => v.tag === 'train/loss').map((v) => [v.step, v.simple_value]);
    assert.deepEqual(loss, [[1, 2.5], [2, f32(0.1)], [3, 'NaN'], [4, 'Infinity'], [5, '-Infinity']]);
    assert.equal(evs[1].wall_time, 1000.5);
    assert.deepEqual(vs.find((v) => v.tag === 'big/step')!.step, 2 ** 40);

    const h = vs.find((v) => v.tag === 'weights/fc')!.histo!;
    assert.equal(h.num, 4);
    assert.equal(h.min, 1);
    assert.equal(h.max, 4);
    assert.equal(h.sum, 10);
    assert.equal(h.sum_squares, 30);
    assert.equal(h.bucket.reduce((a: number, b: number) => a + b, 0), 4);
    assert.equal(h.bucket_limit.at(-1), 4);
    const count = (tag: string) => vs.find((v) => v.tag === tag)!.simple_value;
    assert.equal(count('weights/fc/nan'), 1);
    assert.equal(count('weights/fc/+inf'), 1);
    assert.equal(count('weights/fc/-inf'), 2);
    const hc = vs.find((v) => v.tag === 'weights/conv')!.histo!;
    assert.deepEqual([hc.num, hc.min, hc.max, hc.sum], [4, -0.5, 1.5, 1.75]);
    assert.equal(vs.find((v) => v.tag === 'weights/fc1.weight')!.histo!.num, 2);
    const he = vs.find((v) => v.tag === 'grads/empty')!.histo!;
    assert.equal(he.num, 0);
    assert.equal(count('grads/empty/nan'), 1);

    const text = vs.find((v) => v.tag === 'guard/events')!;
    assert.equal(text.plugin, 'text');
    assert.equal(text.dtype, 7);
    assert.deepEqual(text.text, ['NaN in **aten::log** — ünïcode']);
    assert.equal(text.step, 13);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tfevents: a flipped byte fails the independent reader\'s CRC check', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-tb-'));
  try {
    const w = new keel.log.TfEventsWriter(dir, { host: 'h' });
    w.addScalar('a', 1, 1);
    w.close();
    const bytes = readFileSync(w.path);
    bytes[bytes.length - 6] ^= 0x01;
    writeFileSync(w.path, bytes);
    assert.throws(() => read(w.path), /bad data CRC/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tfevents: metrics.jsonl lines (step, eval, health, guard) map to scalars and text', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-tb-'));
  try {
    const lines: Record<string, unknown>[] = [
      { step: 1, epoch: 0, loss: 2.3, accuracy: 0.1, lr: 0.001, gradNorm: 4.5, stepTimeMs: 12 },
      { step: 2, epoch: 0, loss: null, accuracy: 0.1, lr: 0.001, gradNorm: 'Infinity', stepTimeMs: 11 },
      { event: 'eval', step: 2, epoch: 0, loss: 1.9, accuracy: 0.4 },
      { event: 'health', step: 2, layers: { 'features.0': { gradNorm: 0.5, gradMax: 0.1, paramNorm: 3, updateRatio: 1e-3, nonFinite: 0, saturation: 0.25, dead: 0.5 }, classifier: { gradNorm: null, gradMax: 0, paramNorm: 1, updateRatio: 0, nonFinite: 3, overflow: 2, underflow: 7 } }, lossScale: 65536 },
      { event: 'guard', step: 2, policy: 'skip', action: 'skipped the update', detail: 'loss is NaN', report: { op: 'aten::log', phase: 'forward', module: 'head', callSite: 'train.ts:10:3', inputs: [{ name: 'self', dtype: 'float32', shape: [4], min: -1, max: 2, nans: 0 }], cause: 'log of a negative number', causeId: 'log-domain', remedies: ['clamp the input', 'use log1p'], detectedIn: 'forward' } },
      { event: 'guard-warning', step: 3, kind: 'saturation', message: '3 sigmoid outputs within one ulp' },
      { event: 'resume', step: 3 },
    ];
    const mapped = lines.map((l) => keel.log.eventsFromMetricsLine(l));
    assert.deepEqual(mapped[0].map((e) => e.tag), ['train/epoch', 'train/loss', 'train/accuracy', 'train/lr', 'train/grad_norm', 'train/step_time_ms']);
    assert.deepEqual(mapped[6], []);
    const w = new keel.log.TfEventsWriter(dir, { host: 'h' });
    for (const l of lines) w.addMetricsLine(l);
    w.close();
    const vs = values(read(w.path));
    const get = (tag: string, step: number) => vs.find((v) => v.tag === tag && v.step === step);
    assert.equal(get('train/loss', 1)!.simple_value, f32(2.3));
    assert.equal(get('train/loss', 2)!.simple_value, 'NaN');
    assert.equal(get('train/grad_norm', 2)!.simple_value, 'Infinity');
    assert.equal(get('eval/accuracy', 2)!.simple_value, f32(0.4));
    assert.equal(get('health/grad_norm/features.0', 2)!.simple_value, 0.5);
    assert.equal(get('health/update_ratio/features.0', 2)!.simple_value, f32(1e-3));
    assert.equal(get('health/saturation/features.0', 2)!.simple_value, 0.25);
    assert.equal(get('health/dead/features.0', 2)!.simple_value, 0.5);
    assert.equal(get('health/grad_norm/classifier', 2)!.simple_value, 'NaN');
    assert.equal(get('health/overflow/classifier', 2)!.simple_value, 2);
    assert.equal(get('amp/loss_scale', 2)!.simple_value, 65536);
    const g = get('guard/events', 2)!;
    assert.equal(g.plugin, 'text');
    for (const s of ['aten::log', 'forward', 'head', 'train.ts:10:3', 'log of a negative number', 'clamp the input', 'skipped the update', 'float32[4]']) assert.ok(g.text![0].includes(s), `guard text holds ${s}`);
    assert.equal(get('guard/nonfinite_steps', 2)!.simple_value, 1);
    assert.ok(get('guard/warnings', 3)!.text![0].includes('sigmoid outputs'));
    assert.ok(existsSync(w.path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
