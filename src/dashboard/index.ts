// keel dashboard and keel report: the user surfaces over run folders.
//   runs.ts     reading run folders (metrics tail, decimation, repro results)
//   server.ts   the local server (token, loopback, safe paths, live updates)
//   page.ts     the page: uPlot and client.js inlined (no CDN, no build step)
//   client.ts   the page's script (browser)
//   report.ts   one self-contained HTML file and a Markdown twin per run
export { startDashboard, runDashboard, safeRunPath, isLoopback, type Dashboard, type DashboardOptions } from './server.js';
export { Run, MetricsTail, decimateIndices, findVerdicts, findTables, findFigures, isRunDir, type RunView, type Verdict, type Table } from './runs.js';
export { writeReport, type ReportOptions } from './report.js';
