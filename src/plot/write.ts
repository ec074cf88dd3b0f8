// Writing a chart: atomically, so a crash never leaves half an SVG behind.
import { writeFileAtomic } from '../io/atomic.js';

/** Awaits `svg` (a chart, or a promise of one) and writes it atomically to `path`. */
export async function writeChart(path: string, svg: string | Promise<string>): Promise<string> {
  const text = await svg;
  if (typeof text !== 'string' || !text.startsWith('<svg')) throw new TypeError(`writeChart: not an SVG document for ${path}`);
  writeFileAtomic(path, text);
  return path;
}
