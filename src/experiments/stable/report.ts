// The printed report of `keel repro stable`: what each part did, its table
// (src/experiments/table.ts, plain and right-aligned), and the claims with
// their rules (claims.ts).
import { table as tableOf, type Cell } from '../table.js';
import { fmtNum, verdictLine } from './claims.js';
import type { StableResults } from './study.js';

/** The stable study's tables: plain, right-aligned, numbers by fmtNum. */
export const table = (head: string[], rows: Cell[][]): string => tableOf(head, rows, { style: 'plain', align: 'right', number: fmtNum });

const yesNo = (v: boolean | null): string => (v === null ? '—' : v ? 'yes' : 'no');

export function reportText(r: StableResults): string {
  const cfg = r.protocol;
  const out: string[] = [];
  out.push(`Part A: growth at initialisation, dense width ${cfg.initWidth}, h = ${cfg.initH}, time-constant random K (std 1/√n), γ = ${cfg.gamma}, float64`);
  out.push(table(['σ', 'architecture', 'N', 'T', '‖δY_N‖/‖δY_0‖', '‖∂L/∂Y_0‖', 'Re λ min', 'Re λ max', '|Im λ| max', 'hλ in region', 'max |R(hλ)|'],
    r.init.map((x) => [x.activation, x.architecture, x.depth, x.depth * x.h, x.growth, x.gradNorm, x.reMin, x.reMax, x.imMaxAbs, yesNo(x.inRegion), x.maxAmplification])));
  out.push('', `Part B: multi-level training (T = ${cfg.T}, depths ${cfg.trainDepths.join('→')}, ${cfg.itersPerLevel} Adam steps per level, lr ${cfg.lr})`);
  const f = cfg.fmnist;
  if (f) {
    const kr = cfg.krylov;
    out.push(`Fashion-MNIST (budgeted: ${f.nTrain} train / ${f.nVal} test images, conv ${f.channels} channels at 14×14, T = ${f.T}, depths ${f.depths.join('→')}, ${f.iters.join('/')} Adam steps of ${f.batch} per level, lr ${f.lr}, ${f.threads} libtorch thread${f.threads > 1 ? 's' : ''}; eigenvalues matrix-free: Arnoldi on Jᵀ (VJPs), the ${kr.k} of largest |λ| and of largest Re λ, Krylov dimension ${kr.steps}, ≤ ${kr.restarts} thick restarts, float64, at layers ${kr.layers.map((x) => `${x}·(N−1)`).join(', ')} of the first validation image's trajectory; ranges from the Ritz values resolved to residual ≤ 1e-3·|λ|max, the region check from all within their residuals)`);
  }
  out.push(table(['data', 'architecture', 'N', 'h', 'train loss', 'val acc %', '‖δY_N‖/‖δY_0‖', '‖∂L/∂Y_0‖', 'Re λ min', 'Re λ max', '|Im λ| max', 'in region', 'steps'],
    r.trained.map((x) => [x.dataset, x.architecture, x.depth, x.h, x.trainLoss, 100 * x.valAccuracy, x.growth, x.gradNorm, x.reMin, x.reMax, x.imMaxAbs, yesNo(x.inRegion), x.iters])));
  if (f && cfg.convInit) {
    const c = cfg.convInit;
    out.push('', `Part C: conv blocks at initialisation on Fashion-MNIST states (${c.images} validation images through a random stride-2 conv opening, ${c.channels} channels at 14×14), h = ${c.h} at every depth, time-constant random K (std 1/√fanIn), γ = ${cfg.gamma}, float64; eigenvalues: Ritz values at layer 0`);
    out.push(table(['σ', 'architecture', 'N', 'T', '‖δY_N‖/‖δY_0‖', '‖∂L/∂Y_0‖', 'Re λ min', 'Re λ max', '|Im λ| max', 'hλ in region', 'max |R(hλ)|', 'resolved', 'max residual'],
      r.convInit.map((x) => [x.activation, x.architecture, x.depth, x.depth * x.h, x.growth, x.gradNorm, x.reMin, x.reMax, x.imMaxAbs, yesNo(x.inRegion), x.maxAmplification, `${x.krylov.resolved}/${x.krylov.ritz}`, x.krylov.maxResidual])));
  }
  const errors = r.runs.filter((x) => x.error !== undefined);
  if (errors.length) out.push('', `${errors.length} run(s) failed with an error (not counted): ${errors.map((x) => `${x.id}: ${x.error}`).join('; ')}`);
  out.push('', `Claims${r.complete ? '' : ' (partial grid: judged on the runs done so far)'}:`, ...r.verdicts.map(verdictLine));
  return out.join('\n');
}
