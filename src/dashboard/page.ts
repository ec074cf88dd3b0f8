// The dashboard's page: one HTML document with its CSS, uPlot (from
// node_modules, read once) and the page script (client.ts compiled beside
// this file) inlined, so the browser makes no request for assets and nothing
// comes from a CDN.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

let cached: string | undefined;

const inline = (js: string) => js.replace(/<\/script/gi, '<\\/script');

export function pageHtml(): string {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const client = readFileSync(new URL('./client.js', import.meta.url), 'utf8').replace(/^\/\/# sourceMappingURL=.*$/m, '').replace(/^export \{\};$/m, '');
  cached = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keel dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${uplotCss}</style>
<style>${CSS}</style>
</head><body>
<header><h1>keel dashboard</h1><span id="live" class="live">connecting…</span></header>
<section id="runs"></section>
<section id="event-detail" hidden></section>
<main id="main"></main>
<script>${inline(uplotJs)}</script>
<script>${inline(client)}</script>
</body></html>`;
  return cached;
}

const CSS = `
body { font: 13px/1.4 system-ui, sans-serif; margin: 0 16px 32px; color: #222; }
header { display: flex; align-items: baseline; gap: 16px; }
h1 { font-size: 18px; margin: 12px 0; }
h2 { font-size: 15px; margin: 20px 0 6px; border-bottom: 1px solid #ddd; }
h3 { font-size: 13px; margin: 10px 0 4px; }
.live { color: #888; } .live.on { color: #2a7; }
#runs { display: flex; flex-wrap: wrap; gap: 8px 16px; }
.run { border: 1px solid #ccc; border-radius: 4px; padding: 4px 8px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; background: #eee; margin-left: 4px; }
.badge.warn { background: #fde2b8; } .badge.bad { background: #f8c4c4; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid #eee; padding: 4px; }
.timeline { position: relative; height: 34px; border: 1px solid #ddd; background: #fafafa; margin: 4px 0 8px; }
.timeline button { position: absolute; top: 6px; width: 12px; height: 20px; padding: 0; border: 0; cursor: pointer; transform: translateX(-6px); }
.timeline button.guard { background: #d33; } .timeline button.guard-warning { background: #e9a23b; }
.timeline button.nonfinite { background: #a020f0; } .timeline button.other { background: #888; }
#event-detail { border: 2px solid #d33; border-radius: 4px; padding: 8px 12px; margin: 8px 0; background: #fff8f8; }
#event-detail table { border-collapse: collapse; }
#event-detail td { padding: 2px 8px; vertical-align: top; border-bottom: 1px solid #eee; }
table.data { border-collapse: collapse; font-size: 12px; }
table.data td, table.data th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
table.data th { background: #f4f4f4; } table.data td.text { text-align: left; }
.verdict-HOLDS, .verdict-holds { color: #176f2c; font-weight: bold; }
.verdict-FAILS, .verdict-DOES { color: #b00; font-weight: bold; }
canvas.heatmap { border: 1px solid #ddd; image-rendering: pixelated; }
.figure { display: inline-block; margin: 6px; vertical-align: top; } .figure img { max-width: 640px; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 6px; overflow: auto; max-height: 360px; }
.legend-note { color: #666; font-size: 11px; }
`;
