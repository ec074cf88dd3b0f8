// The SVG plots of `keel repro stable`, drawn from results.json's runs after
// the grid: growth at init vs depth, accuracy vs depth, decision maps of the
// 2-D sets, hλ of the trained blocks over the integrators' regions.
import { join } from 'node:path';
import { complexScatter, decisionMap, forwardEulerDisc, leapfrogSegment, lineChart, writeChart, type LineSeries } from '../../plot/index.js';
import { scope } from '../../core/memory.js';
import { ARCHITECTURES } from '../../stable/factory.js';
import { pct } from '../../stats/index.js';
import { initEigenvalues, loadDataSet } from './run.js';
import type { StableResults } from './study.js';

type EigSet = { name: string; re: number[]; im: number[]; h: number };

/** hλ of each set over forward Euler's disc |1 + z| ≤ 1 and leapfrog/Verlet's segment (−2i, 2i); window ≤ ±50. */
function eigPlot(title: string, sets: EigSet[]): Promise<string> {
  return complexScatter(sets.map((s) => ({ name: s.name, re: s.re.map((v) => v * s.h), im: s.im.map((v) => v * s.h) })),
    { title, xLabel: 'Re hλ', yLabel: 'Im hλ', underlays: [forwardEulerDisc(), leapfrogSegment(2)], maxHalfWidth: 50 });
}

/** Writes the plots into dir; returns their file names. */
export async function writeCharts(r: StableResults, dir: string): Promise<string[]> {
  const cfg = r.protocol;
  const files: string[] = [];
  const charts: Promise<string>[] = [];
  const chart = (name: string, svg: Promise<string>): void => {
    files.push(name);
    const done = writeChart(join(dir, name), svg);
    done.catch(() => undefined); // reported by the Promise.all below, not as an unhandled rejection
    charts.push(done);
  };
  const byDepth = <T extends { architecture: string; depth: number }>(rows: T[], y: (x: T) => number): LineSeries[] =>
    ARCHITECTURES.map((a) => {
      const rs = rows.filter((x) => x.architecture === a);
      return { name: a, x: rs.map((x) => Math.log2(x.depth)), y: rs.map(y) };
    });
  for (const act of ['tanh', 'identity']) {
    chart(`growth-init-${act}.svg`, lineChart(byDepth(r.init.filter((x) => x.activation === act), (x) => x.growth ?? Number.NaN),
      { title: `perturbation growth at init (σ = ${act}, h = ${cfg.initH})`, xLabel: 'log2 depth N', yLabel: '‖δY_N‖/‖δY_0‖', logY: true }));
  }
  const trainRuns = r.runs.filter((x) => x.part === 'train' && x.result !== null);
  for (const name of [...cfg.datasets, ...(cfg.fmnist ? ['fashion-mnist'] : [])]) {
    const runs = trainRuns.filter((x) => x.part === 'train' && x.dataset === name);
    if (runs.length === 0) continue;
    const fm = name === 'fashion-mnist';
    const eigs: EigSet[] = runs.flatMap((x) => (x.result!.eig ? [{ name: x.architecture, ...x.result!.eig }] : []));
    const N = fm ? cfg.fmnist!.depths.at(-1) : cfg.trainDepths.at(-1);
    if (eigs.length) {
      chart(`eigenvalues-${name}.svg`, eigPlot(fm ? `Fashion-MNIST: hλ (Ritz values) of the trained conv blocks' RHS Jacobians (N = ${N})` : `${name}: hλ of the trained blocks' RHS Jacobians (N = ${N})`, eigs));
    }
    chart(`accuracy-${name}.svg`, lineChart(byDepth(r.trained.filter((x) => x.dataset === name), (x) => 100 * x.valAccuracy),
      fm ? { title: 'Fashion-MNIST (subset): validation accuracy vs depth', xLabel: 'log2 depth N', yLabel: 'accuracy %' } : { title: `${name}: validation accuracy vs depth (T = ${cfg.T})`, xLabel: 'log2 depth N', yLabel: 'accuracy %' }));
    if (fm || !runs.some((x) => x.result!.boundary)) continue;
    const { box, val, lab } = scope(() => {
      const ds = loadDataSet(name, cfg);
      return { box: ds.box, val: ds.val.x.toArray<number[][]>(), lab: ds.val.y.toArray<number[]>() };
    });
    for (const x of runs) {
      const last = x.result!.trained?.at(-1);
      if (!x.result!.boundary || !box || !last) continue;
      chart(`boundary-${name}-${x.architecture}.svg`, decisionMap({ title: `${name}, ${x.architecture}, N = ${last.depth}: val ${pct(last.valAccuracy, 1)}%`, box, grid: x.result!.boundary, points: { x: val.map((p) => p[0]), y: val.map((p) => p[1]), label: lab } }));
    }
  }
  if (r.convInit.length && cfg.convInit) {
    chart('growth-init-conv-fashion-mnist.svg', lineChart(byDepth(r.convInit.filter((x) => x.activation === 'tanh'), (x) => x.growth ?? Number.NaN),
      { title: `conv blocks at init on Fashion-MNIST states: perturbation growth (σ = tanh, h = ${cfg.convInit.h})`, xLabel: 'log2 depth N', yLabel: '‖δY_N‖/‖δY_0‖', logY: true }));
  }
  chart('eigenvalues-init.svg', eigPlot(`hλ at initialisation (tanh, h = ${cfg.initH}; disc: forward Euler, segment: Verlet/leapfrog)`,
    ARCHITECTURES.map((a) => ({ name: a, ...initEigenvalues(cfg, a) }))));
  await Promise.all(charts);
  return files;
}
