// Renders a vega-lite spec to a standalone SVG string, offline: vega's
// headless view (renderer 'none') with a loader that refuses every URL, so a
// chart can only carry its data inline. vega and vega-lite are loaded on the
// first chart, so importing keel does not pay for them.
import type { TopLevelSpec } from 'vega-lite';

type Vega = typeof import('vega');
type VegaLite = typeof import('vega-lite');

/**
 * A vega-lite spec (vega-lite's `TopLevelSpec`). Typed as `object` so that
 * keel's declarations compile without vega-lite, an optional peer dependency.
 */
export type VegaLiteSpec = object;

let libs: Promise<[Vega, VegaLite]> | null = null;

/** vega and vega-lite are optional peer dependencies: only charts need them. */
async function importOptional<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(`keel.plot needs the optional package '${name}' (npm install vega vega-lite)`, { cause: e });
    }
    throw e;
  }
}

function load(): Promise<[Vega, VegaLite]> {
  libs ??= Promise.all([importOptional('vega', () => import('vega')), importOptional('vega-lite', () => import('vega-lite'))]);
  libs.catch(() => { libs = null; }); // a later call, after the install, tries again
  return libs;
}

/** Shared look: white background, sans-serif, no per-item ARIA labels (they would double the file size). */
export const BASE_CONFIG = {
  background: 'white',
  font: 'sans-serif',
  aria: false,
  title: { fontSize: 13, subtitleFontSize: 10, subtitleColor: '#555' },
  axis: { labelFontSize: 10, titleFontSize: 11, titleFontWeight: 'normal' as const },
  legend: { labelFontSize: 10, titleFontSize: 11, labelLimit: 220 },
};

function refuse(uri: string): Promise<never> {
  return Promise.reject(new Error(`keel.plot: charts carry their data inline; refusing to load '${uri}'`));
}

/** Throws if any data set in a compiled vega spec names a URL (vega would only log a failed load). */
function assertInline(node: unknown, path: string): void {
  if (Array.isArray(node)) node.forEach((v, i) => assertInline(v, `${path}[${i}]`));
  else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'url' && path.includes('.data')) throw new Error(`keel.plot: charts carry their data inline; ${path} loads '${String(v)}'`);
      assertInline(v, `${path}.${k}`);
    }
  }
}

/** SVG text of a vega-lite spec. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const [vega, vl] = await load();
  const compiled = vl.compile(spec as TopLevelSpec).spec;
  assertInline(compiled, 'spec');
  const base = vega.loader();
  const loader = Object.assign(base, { load: refuse, sanitize: refuse, http: refuse, file: refuse });
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
