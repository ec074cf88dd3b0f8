// Runs the reference PyTorch (Debian's python3-torch, always /usr/bin/python3)
// in a subprocess: a Python snippet reads JSON `inp` and sets `out`, which
// comes back as JSON. Tests compare Keel against it with explicit tolerances.
import { execFileSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

let available: boolean | undefined;
export function torchAvailable(): boolean {
  if (available === undefined) {
    try {
      execFileSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 });
      available = true;
    } catch {
      available = false;
    }
  }
  return available;
}

const PRELUDE = `
import json, sys, math
import torch
torch.set_num_threads(1)
def T(x, dtype=torch.float64, requires_grad=False):
    t = torch.tensor(x, dtype=dtype)
    return t.requires_grad_(requires_grad) if requires_grad else t
def L(t):
    if t is None: return None
    if isinstance(t, (list, tuple)): return [L(x) for x in t]
    if isinstance(t, torch.Tensor): return t.detach().to(torch.float64).tolist() if t.is_floating_point() else t.detach().tolist()
    return t
inp = json.loads(sys.stdin.read())
out = None
`;

/** Runs `code` under PyTorch with `inp` bound to the JSON input; returns `out`. */
export function runTorch<T = unknown>(code: string, inp: unknown = null): T {
  const script = `${PRELUDE}\n${code}\nsys.stdout.write(json.dumps(out))\n`;
  const stdout = execFileSync(PYTHON, ['-c', script], {
    input: JSON.stringify(inp),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: 300_000,
  });
  return JSON.parse(stdout) as T;
}
